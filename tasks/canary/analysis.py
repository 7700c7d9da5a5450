"""One analysis step: fetch baseline and canary series, judge every metric, score, check
thresholds, and come to a verdict with its reasons.

``collect``/``measure`` talk to a metric provider (and never raise for a failed query: the failure
is carried to the judge, which turns it into an ``Error`` metric or an ERROR measurement);
``judge`` is pure and decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tasks.canary.classify import classify_metric
from tasks.canary.result import Classification, MetricResult
from tasks.canary.scoring import GroupScore, Verdict, score_details, verdict, worst
from tasks.canary.thresholds import Assessment, Phase, assess
from tasks.metrics.base import Measurement, MetricProvider, Samples, render_query

if TYPE_CHECKING:
    from policies.canary import CanaryTemplate, TemplateMetric

_THRESHOLD_VERDICT = {
    Phase.FAILED: Verdict.FAIL,
    Phase.ERROR: Verdict.ERROR,
    Phase.INCONCLUSIVE: Verdict.MARGINAL,
}


@dataclass(frozen=True)
class SeriesPair:
    baseline: Samples
    canary: Samples
    baseline_exposure: Samples | None = None
    canary_exposure: Samples | None = None


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    score: float
    reason: str
    metrics: tuple[tuple[str, MetricResult], ...]  # (group, result)
    groups: tuple[GroupScore, ...] = ()
    thresholds: tuple[Assessment, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "score": self.score,
            "reason": self.reason,
            "metrics": [{"group": g, **r.to_dict()} for g, r in self.metrics],
            "groups": [asdict(g) for g in self.groups],
            "thresholds": [
                {k: v for k, v in asdict(a).items() if k != "measurements"}
                | {"phase": str(a.phase)}
                for a in self.thresholds
            ],
        }


def _judge_metric(metric: TemplateMetric, pair: SeriesPair | None) -> MetricResult:
    if pair is None:
        return MetricResult.error(metric.name, "no samples were collected", metric.config)
    for side, samples in (("baseline", pair.baseline), ("canary", pair.canary)):
        if samples.error is not None:
            reason = f"{side} query failed: {samples.error}"
            return MetricResult.error(metric.name, reason, metric.config)
    exposure = None
    if metric.exposure_query is not None:
        sides = {"baseline": pair.baseline_exposure, "canary": pair.canary_exposure}
        totals = {}
        for side, counted in sides.items():
            if counted is None or counted.error is not None:
                problem = "not collected" if counted is None else counted.error
                reason = f"{side} exposure query failed: {problem}"
                return MetricResult.error(metric.name, reason, metric.config)
            totals[side] = math.fsum(v for v in counted.values if not math.isnan(v))
        exposure = (totals["baseline"], totals["canary"])
    return classify_metric(
        pair.baseline.values, pair.canary.values, metric.config, name=metric.name, exposure=exposure
    )


def judge(
    template: CanaryTemplate,
    series: Mapping[str, SeriesPair],
    measurements: Mapping[str, Sequence[Measurement]] | None = None,
    *,
    terminating: bool = False,
) -> AnalysisResult:
    """Classify, score and check: the verdict of one analysis step."""
    results = tuple((m.group, _judge_metric(m, series.get(m.name))) for m in template.metrics)
    details = score_details(results, template.weights)
    score_verdict = verdict(details.score, template.pass_score, template.marginal_score)
    reasons = [f"score {details.score:g}: {details.reason}"]
    assessments = tuple(
        assess(t.check, (measurements or {}).get(t.name, ()), terminating=terminating)
        for t in template.thresholds
    )
    verdicts = [score_verdict]
    for a in assessments:
        if a.phase in _THRESHOLD_VERDICT:
            verdicts.append(_THRESHOLD_VERDICT[a.phase])
            reasons.append(f"threshold {a.name}: {a.reason}")
    final = worst(verdicts)
    judged = [r for _, r in results if not r.muted]
    if judged and all(r.classification == Classification.ERROR for r in judged):
        final = Verdict.ERROR  # nothing was measured: not evidence against the canary
        reasons.insert(0, f"no metric could be judged: {judged[0].reason}")
    reason = "; ".join(reasons)
    return AnalysisResult(final, details.score, reason, results, details.groups, assessments)


def collect(
    provider: MetricProvider,
    template: CanaryTemplate,
    end: datetime | None = None,
    variables: Mapping[str, str] | None = None,
) -> dict[str, SeriesPair]:
    """Range queries for every metric, baseline and canary, over the template's window."""
    end = end or datetime.now(UTC)
    start = end - timedelta(seconds=template.window_seconds)
    values = {**template.variables, **(variables or {})}

    def fetch(query: str, labels: Mapping[str, str]) -> Samples:
        promql = render_query(query, labels, values)
        return provider.query(promql, start, end, template.step_seconds)

    pairs = {}
    for m in template.metrics:
        exposure = m.exposure_query
        pairs[m.name] = SeriesPair(
            baseline=fetch(m.query, template.baseline_labels),
            canary=fetch(m.query, template.canary_labels),
            baseline_exposure=fetch(exposure, template.baseline_labels) if exposure else None,
            canary_exposure=fetch(exposure, template.canary_labels) if exposure else None,
        )
    return pairs


def measure(
    provider: MetricProvider,
    template: CanaryTemplate,
    at: datetime | None = None,
    variables: Mapping[str, str] | None = None,
) -> dict[str, Measurement]:
    """One measurement per threshold check (instant queries)."""
    values = {**template.variables, **(variables or {})}
    return {
        t.name: provider.query_instant(render_query(t.query, template.labels(t.target), values), at)
        for t in template.thresholds
    }
