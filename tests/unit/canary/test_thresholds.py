"""Threshold checks: one measurement at a time, then the check over successive measurements."""

from __future__ import annotations

import math

import pytest

from suite.errors import ConfigError
from tasks.canary.thresholds import (
    Condition,
    Phase,
    ThresholdCheck,
    assess,
    evaluate,
    worst_phase,
)
from tasks.metrics.base import Measurement

OK = ThresholdCheck("success-rate", success_condition=Condition.parse("result >= 0.99"))
BAD = ThresholdCheck("p99", failure_condition=Condition.parse("> 0.5"))
BOTH = ThresholdCheck(
    "both",
    success_condition=Condition.parse("result >= 0.99"),
    failure_condition=Condition.parse("result < 0.9"),
)
NONE = ThresholdCheck("none")


def v(value: float) -> Measurement:
    return Measurement(value=value)


def err(message: str = "prometheus down") -> Measurement:
    return Measurement(error=message)


MEASUREMENTS = [
    ("success_condition_met", OK, v(0.995), Phase.SUCCESSFUL, "meets success condition"),
    ("success_condition_missed", OK, v(0.98), Phase.FAILED, "misses success condition"),
    ("failure_condition_met", BAD, v(0.7), Phase.FAILED, "meets failure condition"),
    ("failure_condition_missed", BAD, v(0.2), Phase.SUCCESSFUL, "misses failure condition"),
    ("both_success", BOTH, v(1.0), Phase.SUCCESSFUL, "meets success"),
    ("both_failure", BOTH, v(0.5), Phase.FAILED, "meets failure"),
    ("both_neither", BOTH, v(0.95), Phase.INCONCLUSIVE, "meets neither"),
    ("no_condition", NONE, v(3.0), Phase.SUCCESSFUL, "no condition"),
    ("nan_is_inconclusive", OK, v(math.nan), Phase.INCONCLUSIVE, "NaN"),
    ("provider_error", OK, err(), Phase.ERROR, "prometheus down"),
]


@pytest.mark.parametrize(
    ("check", "measurement", "phase", "reason"),
    [m[1:] for m in MEASUREMENTS],
    ids=[m[0] for m in MEASUREMENTS],
)
def test_measurement_phase(
    check: ThresholdCheck, measurement: Measurement, phase: Phase, reason: str
) -> None:
    result = evaluate(check, measurement)
    assert result.phase == phase and reason in result.reason


LIMITED = ThresholdCheck(
    "success-rate",
    success_condition=Condition.parse(">= 0.99"),
    failure_limit=2,
    inconclusive_limit=1,
    consecutive_error_limit=2,
    count=5,
)

ASSESSMENTS = [
    ("running_until_count", [v(1), v(1)], Phase.RUNNING, "2 measured"),
    ("no_measurement_yet", [], Phase.RUNNING, "0 measured"),
    ("successful_at_count", [v(1)] * 5, Phase.SUCCESSFUL, "count (5) reached"),
    (
        "failures_within_limit",
        [v(0.5), v(1), v(0.5), v(1), v(1)],
        Phase.SUCCESSFUL,
        "failed (2) <= failure_limit (2)",
    ),
    (
        "failed_over_limit",
        [v(0.5), v(0.5), v(1), v(0.5)],
        Phase.FAILED,
        "failed (3) > failure_limit (2)",
    ),
    (
        "inconclusive_over_limit",
        [v(math.nan), v(1), v(math.nan)],
        Phase.INCONCLUSIVE,
        "inconclusive (2) > inconclusive_limit (1)",
    ),
    (
        "errors_over_limit",
        [v(1), err(), err(), err()],
        Phase.ERROR,
        "consecutive errors (3) > consecutive_error_limit (2); last: measurement failed: "
        "prometheus down",
    ),
    (
        "errors_reset_by_a_good_measurement",
        [err(), err(), v(1), err(), err()],
        Phase.SUCCESSFUL,
        "count (5) reached",
    ),
    (
        "failure_wins_over_errors",
        [v(0), v(0), v(0), err(), err(), err()],
        Phase.FAILED,
        "failed (3)",
    ),
]


@pytest.mark.parametrize(
    ("measurements", "phase", "reason"),
    [a[1:] for a in ASSESSMENTS],
    ids=[a[0] for a in ASSESSMENTS],
)
def test_check_outcome(measurements: list[Measurement], phase: Phase, reason: str) -> None:
    result = assess(LIMITED, measurements)
    assert result.phase == phase
    assert reason in result.reason


def test_default_limits_fail_on_the_first_failure() -> None:
    assert assess(OK, [v(0.5)]).reason == "failed (1) > failure_limit (0)"


def test_an_ended_analysis_concludes_a_running_check() -> None:
    assert assess(OK, [v(1.0)], terminating=True).phase == Phase.SUCCESSFUL
    ended_empty = assess(OK, [], terminating=True)
    assert ended_empty.phase == Phase.INCONCLUSIVE
    assert "without a single measurement" in ended_empty.reason


def test_counts_are_reported() -> None:
    result = assess(LIMITED, [v(1), v(0.5), err(), v(math.nan)])
    assert (result.measured, result.successful, result.failed) == (4, 1, 1)
    assert (result.inconclusive, result.errors, result.consecutive_errors) == (1, 1, 0)


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [("result >= 0.99", ">=", 0.99), ("<500", "<", 500.0), (" result != 1e-3 ", "!=", 0.001)],
)
def test_condition_parsing(text: str, op: str, value: float) -> None:
    assert Condition.parse(text) == Condition(op, value)


@pytest.mark.parametrize("text", ["result => 1", "result >= x", "len(result) > 0", ""])
def test_bad_condition_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="is not understood"):
        Condition.parse(text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_limit": -1}, "failure_limit is -1"),
        ({"consecutive_error_limit": 1.5}, "consecutive_error_limit is 1.5"),
        ({"count": 0}, "count is 0"),
    ],
)
def test_bad_limits_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ThresholdCheck("x", **options)


def test_worst_phase_follows_argo_order() -> None:
    assert worst_phase([Phase.SUCCESSFUL, Phase.INCONCLUSIVE]) == Phase.INCONCLUSIVE
    assert worst_phase([Phase.ERROR, Phase.FAILED]) == Phase.FAILED
    assert worst_phase([Phase.RUNNING, Phase.SUCCESSFUL]) == Phase.SUCCESSFUL


def test_measurement_has_a_value_or_an_error() -> None:
    with pytest.raises(ConfigError):
        Measurement()
    with pytest.raises(ConfigError):
        Measurement(value=1.0, error="both")
