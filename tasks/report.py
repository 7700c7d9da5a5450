"""The release report: one markdown artifact per run with stages, durations, the scan gate,
every canary step's statistics and the outcome — what a reviewer needs, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@dataclass
class StageRecord:
    name: str
    seconds: float
    outcome: str
    detail: str = ""


@dataclass
class ReleaseRecord:
    """Mutable while the flow runs; rendered at the end whatever happened."""

    release: str
    service: str
    strategy: str
    target: str
    git_sha: str = ""
    image: str = ""
    model: str = ""
    triggered_by: str = ""
    stages: list[StageRecord] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, str]] = field(default_factory=list)
    outcome: str = "running"
    reason: str = ""
    champion_before: str | None = None
    champion_after: str | None = None
    load_failed: int | None = None  # requests the synthetic load lost, when it ran

    def summary(self) -> dict[str, Any]:
        return {"release": self.release, "outcome": self.outcome, "reason": self.reason,
                "git_sha": self.git_sha, "image": self.image, "model": self.model,
                "strategy": self.strategy, "champion_before": self.champion_before,
                "champion_after": self.champion_after, "load_failed": self.load_failed,
                "stages": {s.name: round(s.seconds, 1) for s in self.stages},
                "scores": [s.get("score") for s in self.steps]}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _metric_rows(step: dict[str, Any]) -> list[str]:
    rows = ["| metric | group | class | n (base/canary) | points | estimate | interval | "
            "effect | p | reason |", "|---|---|---|---|---|---|---|---|---|---|"]
    points = step.get("points", {})
    for m in step.get("metrics", []):
        name = m.get("name", "")
        interval = m.get("interval") or {}
        low, high = interval.get("low"), interval.get("high")
        rows.append(
            f"| {name} | {m.get('group', '')} | **{m.get('classification', '')}** | "
            f"{_fmt(m.get('control', {}).get('count'))}/"
            f"{_fmt(m.get('experiment', {}).get('count'))} | "
            f"{'/'.join(map(str, points.get(name, ())))} | {_fmt(m.get('estimate'))} | "
            f"[{_fmt(low)}, {_fmt(high)}] | {_fmt(m.get('effect_size'))} | "
            f"{_fmt(m.get('p_value'))} | {str(m.get('reason', '')).replace('|', '/')} |"
        )
    return rows


def render(rec: ReleaseRecord) -> str:
    lines = [
        f"# Release {rec.release} — {rec.outcome.upper()}",
        "",
        f"- service `{rec.service}` on target `{rec.target}`, strategy **{rec.strategy}**",
        f"- commit `{rec.git_sha[:12]}`; image `{rec.image or '—'}`",
        f"- model {rec.model or '—'}; champion {rec.champion_before or '—'} → "
        f"{rec.champion_after or rec.champion_before or '—'}",
        f"- triggered by: {rec.triggered_by or 'manual'}",
        f"- outcome: **{rec.outcome}** — {rec.reason}",
        "",
        "## Stages",
        "",
        "| stage | seconds | outcome | detail |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.outcome} | {s.detail.replace('|', '/')} |"
              for s in rec.stages]
    if rec.gate:
        lines += ["", "## Scan gate", ""]
        lines += [f"- {k}: {v}" for k, v in rec.gate.items()]
    for step in rec.steps:
        lines += [
            "",
            f"## Canary step {step.get('step')} at {step.get('weight')} % — "
            f"{step.get('verdict')} (score {step.get('score')})",
            "",
            f"{step.get('seconds')} s from {step.get('started')}"
            f"{' (stopped early)' if step.get('stopped_early') else ''}; {step.get('reason')}",
            "",
            *_metric_rows(step),
        ]
        thresholds = step.get("thresholds") or []
        if thresholds:
            lines += ["", "| threshold | phase | measured | failed | reason |",
                      "|---|---|---|---|---|"]
            lines += [f"| {t.get('name')} | {t.get('phase')} | {t.get('measured')} | "
                      f"{t.get('failed')} | {t.get('reason')} |" for t in thresholds]
    if rec.approvals:
        lines += ["", "## Approvals", ""]
        lines += [f"- {a['decision']} by {a['approver']}: {a['reason']}" for a in rec.approvals]
    return "\n".join(lines) + "\n"


@task(name="release-report", cache_policy=NO_CACHE)
def report_task(rec: ReleaseRecord) -> str:
    from prefect.artifacts import create_markdown_artifact

    text = render(rec)
    create_markdown_artifact(key="release-report", markdown=text,
                             description=f"release {rec.release}: {rec.outcome}")
    return text
