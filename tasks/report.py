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
    #: what went wrong without changing the outcome (a failed audit append at the end, a
    #: finalize that left the old replicas, a compensation that needed retries)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"release": self.release, "outcome": self.outcome, "reason": self.reason,
                "git_sha": self.git_sha, "image": self.image, "model": self.model,
                "strategy": self.strategy, "champion_before": self.champion_before,
                "champion_after": self.champion_after, "load_failed": self.load_failed,
                "stages": {s.name: round(s.seconds, 1) for s in self.stages},
                "scores": [s.get("score") for s in self.steps], "notes": list(self.notes)}


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
        kayenta = m.get("kayenta_classification")
        beside = f" (Kayenta: {kayenta})" if kayenta and kayenta != m.get("classification") else ""
        rows.append(
            f"| {name} | {m.get('group', '')} | **{m.get('classification', '')}**{beside} | "
            f"{_fmt(m.get('control', {}).get('count'))}/"
            f"{_fmt(m.get('experiment', {}).get('count'))} | "
            f"{'/'.join(map(str, points.get(name, ())))} | {_fmt(m.get('estimate'))} | "
            f"[{_fmt(low)}, {_fmt(high)}] | {_fmt(m.get('effect_size'))} | "
            f"{_fmt(m.get('p_value'))} | {str(m.get('reason', '')).replace('|', '/')} |"
        )
    return rows


def _trail(history: list[Any], points: int = 8) -> str:
    """A sequential test's p-value over time, thinned to a few looks (the last one kept)."""
    if not history:
        return "—"
    every = max(1, -(-len(history) // points))
    kept = [*history[::every][: points - 1], history[-1]] if len(history) > 1 else history
    return ", ".join(f"{float(t):g} s: {float(p):.3g}" for t, p in kept)


def _sequential_rows(step: dict[str, Any]) -> list[str]:
    checks = step.get("sequential") or []
    if not checks:
        return []
    rows = ["", "| sequential test | kind | critical | crossed alpha at | p over time | reason |",
            "|---|---|---|---|---|---|"]
    for c in checks:
        crossed = c.get("crossed_at")
        reason = c.get("error") or (c.get("result") or {}).get("reason", "no traffic yet")
        rows.append(f"| {c.get('name')} | {c.get('kind')} | {c.get('critical')} | "
                    f"{'—' if crossed is None else f'{crossed:g} s'} | "
                    f"{_trail(c.get('history') or [])} | {str(reason).replace('|', '/')} |")
    return rows


def _pictures(step: dict[str, Any], prometheus: str) -> list[str]:
    """The step's chart as an embedded image and a Prometheus link per metric."""
    from tasks import report_chart

    lines: list[str] = []
    try:
        png = report_chart.step_chart(step)
    except Exception as exc:  # a chart never costs the report
        lines += ["", f"(no chart: {type(exc).__name__}: {exc})"[:300]]
        png = None
    if png:
        lines += ["", f"![step {step.get('step')}: canary against stable]"
                      f"({report_chart.data_uri(png)})"]
    if prometheus:
        links = report_chart.metric_links(step, prometheus)
        if links:
            lines += ["", "Prometheus: " + " · ".join(f"[{name}]({url})" for name, url in links)]
    return lines


def render(rec: ReleaseRecord, prometheus: str = "", pictures: bool = True) -> str:
    """``prometheus``: the server's URL, for a graph link per metric; ``pictures``: charts."""
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
    if pictures and rec.steps:
        from tasks import report_chart

        try:
            overview = report_chart.release_chart(rec.steps)
        except Exception:  # a chart never costs the report
            overview = None
        if overview:
            lines += ["", "## Canary steps", "",
                      f"![weight and verdict of each step]({report_chart.data_uri(overview)})"]
    if rec.gate:
        lines += ["", "## Scan gate", ""]
        lines += [f"- {k}: {v}" for k, v in rec.gate.items()]
    for step in rec.steps:
        pause = step.get("kind") == "pause"  # watched by the sequential tests only
        lines += [
            "",
            f"## Canary step {step.get('step')}{' (pause)' if pause else ''} at "
            f"{step.get('weight')} % — {step.get('verdict')} (score {step.get('score')})",
            "",
            f"{step.get('seconds')} s from {step.get('started')}"
            f"{' (stopped early)' if step.get('stopped_early') else ''}; {step.get('reason')}",
            *([] if pause else ["", *_metric_rows(step)]),
        ]
        if pictures:
            lines += _pictures(step, prometheus)
        thresholds = step.get("thresholds") or []
        if thresholds:
            lines += ["", "| threshold | phase | measured | failed | reason |",
                      "|---|---|---|---|---|"]
            lines += [f"| {t.get('name')} | {t.get('phase')} | {t.get('measured')} | "
                      f"{t.get('failed')} | {t.get('reason')} |" for t in thresholds]
        lines += _sequential_rows(step)
    if rec.approvals:
        lines += ["", "## Approvals", ""]
        lines += [f"- {a['decision']} by {a['approver']}: {a['reason']}" for a in rec.approvals]
    healed = [h for step in rec.steps for h in step.get("healed") or ()]
    if healed:
        lines += ["", "## Stable healed during the analysis", ""]
        lines += [f"- {h}" for h in healed]
    if rec.notes:
        lines += ["", "## Notes (the outcome stands)", ""]
        lines += [f"- {n}" for n in rec.notes]
    return "\n".join(lines) + "\n"


@task(name="release-report", cache_policy=NO_CACHE)
def report_task(rec: ReleaseRecord) -> str:
    from prefect.artifacts import create_markdown_artifact

    from suite import settings as settings_mod

    text = render(rec, prometheus=settings_mod.load().url("prometheus"))
    create_markdown_artifact(key="release-report", markdown=text,
                             description=f"release {rec.release}: {rec.outcome}")
    return text
