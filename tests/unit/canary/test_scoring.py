"""Kayenta's weighted-sum scorer and the score thresholds, edge case by edge case."""

from __future__ import annotations

import math

import pytest

from suite.errors import ConfigError
from tasks.canary.judge import (
    Classification,
    MetricResult,
    Verdict,
    score_details,
    score_groups,
    verdict,
    worst,
)
from tasks.canary.scoring import round_half_up

P, H, L = Classification.PASS, Classification.HIGH, Classification.LOW
ND, NDF, ERR = Classification.NODATA, Classification.NODATA_FAIL_METRIC, Classification.ERROR


def r(label: Classification, critical: bool = False, muted: bool = False) -> MetricResult:
    return MetricResult(f"m-{label}", label, critical, f"was {label}", muted=muted)


SCORES: list[tuple[str, list[tuple[str, MetricResult]], dict[str, float], float]] = [
    ("all_pass", [("a", r(P)), ("a", r(P))], {}, 100.0),
    ("one_high_of_four", [("a", r(P)), ("a", r(P)), ("a", r(P)), ("a", r(H))], {}, 75.0),
    ("weighted_groups", [("a", r(P)), ("a", r(L)), ("b", r(P))], {"a": 60, "b": 40}, 70.0),
    ("unweighted_groups_share_the_rest", [("a", r(H)), ("b", r(P)), ("c", r(H))], {"a": 50}, 25.0),
    ("no_weights_share_equally", [("a", r(P)), ("b", r(H)), ("c", r(P)), ("d", r(P))], {}, 75.0),
    ("nodata_is_not_counted", [("a", r(P)), ("a", r(ND)), ("a", r(P))], {}, 100.0),
    ("error_is_not_counted", [("a", r(P)), ("a", r(ERR)), ("a", r(H))], {}, 50.0),
    ("group_with_nothing_counted_scores_100", [("a", r(ERR)), ("b", r(P)), ("b", r(H))], {}, 75.0),
    ("nodata_fail_metric_counts_as_a_failure", [("a", r(P)), ("a", r(NDF))], {}, 50.0),
    ("critical_high_zeroes_the_score", [("a", r(P)), ("a", r(P)), ("b", r(H, True))], {}, 0.0),
    ("critical_nodata_zeroes_the_score", [("a", r(P)), ("a", r(P)), ("b", r(ND, True))], {}, 0.0),
    ("critical_error_zeroes_the_score", [("a", r(P)), ("a", r(ERR, True))], {}, 0.0),
    ("critical_pass_is_fine", [("a", r(P, True)), ("a", r(P))], {}, 100.0),
    (
        "half_nodata_zeroes_the_score",
        [("a", r(P)), ("a", r(ND)), ("b", r(P)), ("b", r(ND))],
        {},
        0.0,
    ),
    ("a_third_nodata_does_not", [("a", r(P)), ("a", r(ND)), ("b", r(P))], {}, 100.0),
    ("muted_failures_are_left_out", [("a", r(P)), ("a", r(H, muted=True))], {}, 100.0),
    ("muted_nodata_is_left_out", [("a", r(P)), ("a", r(ND, muted=True))], {}, 100.0),
    ("muted_critical_is_left_out", [("a", r(P)), ("a", r(H, True, muted=True))], {}, 100.0),
    ("weight_of_an_absent_group_is_lost", [("a", r(P))], {"a": 50, "b": 50}, 50.0),
    (
        "rounded_half_up",
        [("a", r(P))] + [("a", r(H))] * 7 + [("b", r(ND))],
        {"a": 1, "b": 99},
        99.13,
    ),
    ("rounded_to_two_places", [("a", r(P)), ("a", r(H)), ("a", r(H))], {}, 33.33),
    ("no_metrics_no_score", [], {}, 0.0),
]


@pytest.mark.parametrize(
    ("results", "weights", "expected"), [c[1:] for c in SCORES], ids=[c[0] for c in SCORES]
)
def test_score(
    results: list[tuple[str, MetricResult]], weights: dict[str, float], expected: float
) -> None:
    assert score_groups(results, weights) == expected


def test_a_metric_in_two_groups_counts_once_for_nodata() -> None:
    missing = r(ND)
    results = [("a", r(P)), ("a", missing), ("b", missing), ("b", r(P)), ("c", r(P))]
    assert score_groups(results, {}) == 100.0  # 1 of 4 metrics is NODATA, not 2 of 5


def test_details_name_the_critical_metric() -> None:
    failing = MetricResult("error_rate", H, True, "errors went up")
    details = score_details([("a", r(P)), ("a", failing)], {})
    assert details.score == 0.0
    assert details.reason == "critical metric error_rate failed: errors went up"


def test_details_carry_group_scores() -> None:
    details = score_details([("a", r(P)), ("a", r(H)), ("b", r(ND))], {"a": 50})
    groups = {g.name: g for g in details.groups}
    assert groups["a"].score == 50.0 and groups["a"].counted == 2
    assert groups["b"].score == 100.0 and groups["b"].counted == 0
    assert details.score == 75.0


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 80, "b": 40}, "add up to 120"),
        ({"a": -1}, "weight of group 'a' is -1"),
        ({"a": "half"}, "weight of group 'a' is 'half'"),
    ],
)
def test_bad_weights_are_config_errors(weights: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        score_groups([("a", r(P)), ("c", r(P))], weights)


def test_round_half_up_rounds_decimal_halves_up() -> None:
    assert round(0.125, 2) == 0.12  # Python: banker's rounding of the binary value
    assert round_half_up(0.125) == 0.13
    assert round_half_up(12.345) == 12.35
    assert round_half_up(99.994999) == 99.99


VERDICTS = [
    (100.0, 95, 75, Verdict.PASS),
    (95.0, 95, 75, Verdict.PASS),
    (94.99, 95, 75, Verdict.MARGINAL),
    (75.0, 95, 75, Verdict.MARGINAL),
    (74.99, 95, 75, Verdict.FAIL),
    (0.0, 95, 75, Verdict.FAIL),
    (80.0, 80, 80, Verdict.PASS),
]


@pytest.mark.parametrize(("score", "pass_at", "marginal_at", "expected"), VERDICTS)
def test_verdict(score: float, pass_at: float, marginal_at: float, expected: Verdict) -> None:
    assert verdict(score, pass_at, marginal_at) == expected


def test_verdict_rejects_marginal_above_pass() -> None:
    with pytest.raises(ConfigError, match="marginal threshold 90 is above the pass threshold 80"):
        verdict(85, 80, 90)


def test_verdict_rejects_nan() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        verdict(math.nan, 95, 75)


def test_worst_verdict() -> None:
    assert worst([Verdict.PASS, Verdict.MARGINAL]) == Verdict.MARGINAL
    assert worst([Verdict.ERROR, Verdict.MARGINAL]) == Verdict.ERROR
    assert worst([Verdict.ERROR, Verdict.FAIL]) == Verdict.FAIL
    assert worst([]) == Verdict.PASS
    assert [v.value for v in Verdict][:3] == ["PASS", "MARGINAL", "ERROR"]
