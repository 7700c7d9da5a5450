"""From metric labels to one score and a verdict: Kayenta's WeightedSumScorer and
ThresholdScoreClassifier.

* A group's score is ``100 · Pass / (Pass + High + Low + NodataFailMetric)``; ``Nodata`` and
  ``Error`` are not counted, and a group with nothing counted scores 100.
* Groups with a weight use it; the others share what is left of 100 equally.
* Any critical result that is not ``Pass`` makes the score 0, and so does ``Nodata`` for half or
  more of the metrics. Muted metrics are left out of everything.
* The score is rounded to 2 decimals, half up (as ``MathUtils.round``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from suite.errors import ConfigError
from tasks.canary.result import Classification, MetricResult

NODATA_THRESHOLD = 50.0
_COUNTED = (
    Classification.PASS,
    Classification.HIGH,
    Classification.LOW,
    Classification.NODATA_FAIL_METRIC,
)


class Verdict(StrEnum):
    """Outcome of an analysis step. ``rank`` orders them from best to worst."""

    PASS = "PASS"  # noqa: S105
    MARGINAL = "MARGINAL"
    ERROR = "ERROR"  # not produced by ``verdict``: the analysis itself could not run
    FAIL = "FAIL"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, key=lambda v: v.rank, default=Verdict.PASS)


@dataclass(frozen=True)
class GroupScore:
    name: str
    score: float  # 100 when nothing was counted
    counted: int
    passed: int
    labels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreResult:
    score: float
    groups: tuple[GroupScore, ...]
    reason: str


def round_half_up(value: float, places: int = 2) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP))


def _group_score(name: str, results: list[MetricResult]) -> GroupScore:
    labels: dict[str, int] = {}
    for r in results:
        labels[str(r.classification)] = labels.get(str(r.classification), 0) + 1
    counted = sum(labels.get(str(c), 0) for c in _COUNTED)
    passed = labels.get(str(Classification.PASS), 0)
    score = 100.0 * passed / counted if counted else 100.0
    return GroupScore(name, score, counted, passed, labels)


def _weights(groups: list[str], weights: Mapping[str, float]) -> dict[str, float]:
    for group, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"weight of group {group!r} is {weight!r} (expected a number >= 0)")
    unweighted = [g for g in groups if g not in weights]
    total = float(sum(weights.values()))
    if unweighted and total > 100.0:
        raise ConfigError(
            f"group weights add up to {total:g}, leaving nothing for groups {unweighted} "
            "(expected weights summing to at most 100, or a weight for every group)"
        )
    share = (100.0 - total) / len(unweighted) if unweighted else 0.0
    return {g: float(weights.get(g, share)) for g in groups}


def score_details(
    results: Iterable[tuple[str, MetricResult]], weights: Mapping[str, float] | None = None
) -> ScoreResult:
    pairs = [(g, r) for g, r in results if not r.muted]
    metrics = list({id(r): r for _, r in pairs}.values())
    by_group: dict[str, list[MetricResult]] = {}
    for group, result in pairs:
        by_group.setdefault(group, []).append(result)
    groups = tuple(_group_score(name, rs) for name, rs in by_group.items())
    if not metrics:
        return ScoreResult(0.0, groups, "no metrics to score")
    critical = [r for r in metrics if r.critical and r.classification != Classification.PASS]
    if critical:
        first = critical[0]
        return ScoreResult(0.0, groups, f"critical metric {first.name} failed: {first.reason}")
    nodata = sum(1 for r in metrics if r.classification == Classification.NODATA)
    if 100.0 * nodata / len(metrics) >= NODATA_THRESHOLD:
        return ScoreResult(
            0.0,
            groups,
            f"{nodata} of {len(metrics)} metrics returned no data "
            f"(>= {NODATA_THRESHOLD:g}% NODATA fails the canary)",
        )
    weight = _weights([g.name for g in groups], weights or {})
    total = sum(g.score * weight[g.name] / 100.0 for g in groups)
    score = round_half_up(total)
    detail = ", ".join(f"{g.name} {g.passed}/{g.counted}" for g in groups)
    return ScoreResult(score, groups, f"weighted score {score:g} (passed/counted: {detail})")


def score_groups(
    results: Iterable[tuple[str, MetricResult]], weights: Mapping[str, float] | None = None
) -> float:
    """Kayenta's weighted-sum score (0..100, 2 decimals) of ``(group, result)`` pairs."""
    return score_details(results, weights).score


def verdict(score: float, pass_threshold: float, marginal_threshold: float) -> Verdict:
    """PASS at or above the pass threshold, MARGINAL at or above the marginal one, else FAIL."""
    if math.isnan(score):
        raise ConfigError("score is NaN (expected a number between 0 and 100)")
    if marginal_threshold > pass_threshold:
        raise ConfigError(
            f"marginal threshold {marginal_threshold:g} is above the pass threshold "
            f"{pass_threshold:g} (expected marginal <= pass)"
        )
    if score >= pass_threshold:
        return Verdict.PASS
    if score >= marginal_threshold:
        return Verdict.MARGINAL
    return Verdict.FAIL
