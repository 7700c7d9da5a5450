"""The canary judge: Kayenta's NetflixACAJudge method, exact and deterministic.

Public API (names and meanings are relied upon from outside the project)::

    wilcoxon_interval(experiment, control, confidence=0.95) -> Interval(low, high, estimate)
    MetricConfig(direction=..., ..., confidence=0.98)
    classify_metric(control, experiment, config) -> MetricResult
    score_groups([(group, MetricResult), ...], {group: weight}) -> float
    verdict(score, pass_threshold, marginal_threshold) -> Verdict

The work is split by concern: ``ranksum`` / ``pairwise`` (the rank-sum test and its exact
interval), ``rates`` (exact Poisson comparison for sparse counts), ``effects`` (effect sizes and the
spread test), ``preprocess`` (NaNs, outliers), ``classify`` (one metric), ``scoring`` (groups,
score, verdict).
"""

from __future__ import annotations

from tasks.canary.classify import classify_metric
from tasks.canary.config import (
    Direction,
    EffectSizeMeasure,
    MetricConfig,
    NanStrategy,
    OutlierStrategy,
    StatTest,
)
from tasks.canary.ranksum import Interval, RankSumTest, rank_sum_test, wilcoxon_interval
from tasks.canary.rates import RateTest, rate_test
from tasks.canary.result import Classification, MetricResult, SampleStats
from tasks.canary.scoring import (
    GroupScore,
    ScoreResult,
    Verdict,
    score_details,
    score_groups,
    verdict,
    worst,
)

__all__ = [
    "Classification",
    "Direction",
    "EffectSizeMeasure",
    "GroupScore",
    "Interval",
    "MetricConfig",
    "MetricResult",
    "NanStrategy",
    "OutlierStrategy",
    "RankSumTest",
    "RateTest",
    "SampleStats",
    "ScoreResult",
    "StatTest",
    "Verdict",
    "classify_metric",
    "rank_sum_test",
    "rate_test",
    "score_details",
    "score_groups",
    "verdict",
    "wilcoxon_interval",
    "worst",
]
