"""Every classification path of ``classify_metric``, table-driven."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from suite.errors import ConfigError
from tasks.canary.judge import Classification, MetricConfig, classify_metric

RNG = np.random.default_rng(2024)
BASE = RNG.lognormal(np.log(100), 0.3, 200)
OTHER = RNG.lognormal(np.log(100), 0.3, 200)  # same distribution, another draw
UP = OTHER * 1.3
DOWN = OTHER * 0.7
WIDE = RNG.lognormal(np.log(100), 1.0, 200)  # same median, spread blown up
FEW_ERRORS = RNG.poisson(0.02, 600).astype(float)
MANY_ERRORS = RNG.poisson(0.2, 600).astype(float)
SAME_ERRORS = RNG.poisson(0.02, 600).astype(float)
SYMMETRIC = np.concatenate([OTHER - 100, 100 - OTHER])  # mean exactly 0: no mean ratio
# histogram_quantile of a p50 in seconds: the baseline barely moves (0.2 us), the canary sits 6 us
# higher with a few us of jitter (the false "28x spread" of the model-server demo), or really
# spreads out around the same median
P50_RNG = np.random.default_rng(6)
STEADY_P50 = 0.00175 + P50_RNG.normal(0.0, 2e-7, 30)
JITTERY_P50 = 0.00175 + 6e-6 + P50_RNG.normal(0.0, 6e-6, 30)
BLOWN_P50 = 0.00175 * P50_RNG.lognormal(0.0, 1.0, 30)
NAN = float("nan")

P, H, L = Classification.PASS, Classification.HIGH, Classification.LOW
ND, NDF, ERR = Classification.NODATA, Classification.NODATA_FAIL_METRIC, Classification.ERROR

CASES: list[tuple[str, Any, Any, dict[str, Any], Classification, bool, str]] = [
    ("high_when_canary_latency_shifts_up", BASE, UP, {}, H, False, "lies above"),
    ("low_when_canary_latency_shifts_down", BASE, DOWN, {}, L, False, "lies below"),
    ("pass_when_same_distribution", BASE, OTHER, {}, P, False, "no clear difference"),
    (
        "increase_ignored_when_only_decrease_counts",
        BASE,
        UP,
        {"direction": "decrease"},
        P,
        False,
        "only decreases count",
    ),
    (
        "decrease_ignored_when_only_increase_counts",
        BASE,
        DOWN,
        {"direction": "increase"},
        P,
        False,
        "only increases count",
    ),
    (
        "high_needs_the_allowed_increase",
        BASE,
        UP,
        {"allowed_increase": 1.5},
        P,
        False,
        "< allowed_increase 1.5",
    ),
    (
        "low_needs_the_allowed_decrease",
        BASE,
        DOWN,
        {"allowed_decrease": 0.5},
        P,
        False,
        "> allowed_decrease 0.5",
    ),
    ("critical_high", BASE, UP, {"critical": True}, H, True, "critical metric"),
    (
        "critical_high_below_critical_increase",
        BASE,
        UP,
        {"critical": True, "critical_increase": 2.0},
        H,
        False,
        "lies above",
    ),
    ("critical_low", BASE, DOWN, {"critical": True}, L, True, "critical metric"),
    (
        "critical_low_above_critical_decrease",
        BASE,
        DOWN,
        {"critical": True, "critical_decrease": 0.5},
        L,
        False,
        "lies below",
    ),
    ("nodata_when_canary_is_empty", BASE, [], {}, ND, False, "no data for the canary"),
    ("nodata_when_all_nan", [NAN, NAN, NAN], BASE, {}, ND, False, "3 NaN removed"),
    ("nodata_of_a_critical_metric_is_critical", BASE, [], {"critical": True}, ND, True, "no data"),
    (
        "nodata_fail_metric_when_data_is_required",
        [],
        BASE,
        {"must_have_data": True},
        NDF,
        False,
        "must have data",
    ),
    (
        "nodata_critical_when_required_and_critical",
        [],
        BASE,
        {"must_have_data": True, "critical": True},
        ND,
        True,
        "no data",
    ),
    (
        "pass_when_nan_means_zero_and_nothing_happened",
        [],
        [],
        {"nan_strategy": "replace"},
        P,
        False,
        "read as zero",
    ),
    (
        "nan_replaced_by_zero",
        [NAN] * 5,
        [0.0] * 5,
        {"nan_strategy": "replace"},
        P,
        False,
        "identical",
    ),
    ("pass_when_identical", BASE, BASE[::-1], {}, P, False, "identical"),
    ("pass_when_one_value_everywhere", [3.0] * 4, [3.0] * 9, {}, P, False, "every value"),
    ("constant_samples_high_without_noise", [1.0] * 10, [2.0] * 10, {}, H, False, "[1, 1]"),
    ("constant_samples_low_without_noise", [1.0] * 10, [0.5] * 12, {}, L, False, "[-0.5, -0.5]"),
    (
        "constant_samples_respect_direction",
        [1.0] * 10,
        [2.0] * 10,
        {"direction": "decrease"},
        P,
        False,
        "only decreases",
    ),
    (
        "constant_samples_respect_effect_size",
        [1.0] * 10,
        [2.0] * 10,
        {"allowed_increase": 3.0},
        P,
        False,
        "meanRatio 2 < allowed_increase 3",
    ),
    ("high_when_spread_blows_up_with_same_median", BASE, WIDE, {"spread_test": True}, H, False,
     "spread"),
    ("spread_test_is_off_by_default_as_in_kayenta", BASE, WIDE, {}, P, False,
     "no clear difference"),
    ("critical_spread_blow_up_is_critical", BASE, WIDE, {"critical": True, "spread_test": True},
     H, True, "spread"),
    ("sparse_errors_high_by_rate_test", FEW_ERRORS, MANY_ERRORS, {"test": "auto"}, H, False,
     "rate ratio"),
    ("sparse_errors_pass_at_the_same_rate", FEW_ERRORS, SAME_ERRORS, {"test": "auto"}, P, False,
     "rate ratio"),
    ("sparse_errors_by_rank_sum_by_default_as_in_kayenta", FEW_ERRORS, SAME_ERRORS, {}, P, False,
     "interval of the shift"),
    ("rate_test_needs_counts", BASE, UP, {"test": "rate"}, ERR, False, "whole counts"),
    (
        "rank_test_sees_sparse_errors_beside_zero_as_kayenta_does",
        FEW_ERRORS,
        MANY_ERRORS,
        {},
        H,
        False,
        "interval of the shift (0, 0] (0 itself rejected",
    ),
    (
        "error_on_infinite_values",
        BASE,
        [1.0, math.inf],
        {"critical": True},
        ERR,
        True,
        "1 infinite",
    ),
    ("error_on_non_numbers", BASE, ["fast", "slow"], {}, ERR, False, "not all numbers"),
    (
        "cles_effect_size_high",
        BASE,
        UP,
        {"effect_size_measure": "cles", "allowed_increase": 0.6},
        H,
        False,
        "cles",
    ),
    (
        "cles_effect_size_too_small",
        BASE,
        UP,
        {"effect_size_measure": "cles", "allowed_increase": 0.95},
        P,
        False,
        "< allowed_increase",
    ),
    (
        "effect_size_unchecked_when_baseline_mean_is_zero",
        SYMMETRIC,
        SYMMETRIC + 30,
        {},
        H,
        False,
        "not checked",
    ),
]


@pytest.mark.parametrize(
    ("control", "experiment", "options", "label", "critical", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classification(
    control: Any,
    experiment: Any,
    options: dict[str, Any],
    label: Classification,
    critical: bool,
    reason: str,
) -> None:
    result = classify_metric(control, experiment, MetricConfig(**options))
    assert result.classification == label, result.reason
    assert result.critical is critical
    assert reason in result.reason


def test_result_carries_every_statistic() -> None:
    result = classify_metric(BASE, UP, MetricConfig(spread_test=True), name="latency_p50")
    assert result.name == "latency_p50"
    assert (result.n_control, result.n_experiment) == (200, 200)
    assert result.interval is not None and result.interval.confidence == 0.98
    assert result.interval.low <= result.estimate <= result.interval.high
    assert 0 < result.p_value < 1e-6
    assert result.effect_size == result.mean_ratio == pytest.approx(UP.mean() / BASE.mean())
    assert 0.5 < result.cles <= 1.0
    assert result.tolerance_band == pytest.approx(0.25 * abs(result.estimate))
    assert result.spread_ratio > 0 and 0 <= result.spread_p_value <= 1
    assert result.experiment.mean == pytest.approx(UP.mean())
    record = result.to_dict()
    assert record["classification"] == "High" and record["interval"]["confidence"] == 0.98


def test_outliers_are_removed_when_asked() -> None:
    spiky = np.concatenate([np.linspace(90.0, 110.0, 400), [1e6, 2e6]])
    kept = classify_metric(BASE, spiky, MetricConfig())
    removed = classify_metric(BASE, spiky, MetricConfig(outlier_strategy="remove"))
    assert kept.experiment.count == 402 and kept.experiment.outliers_removed == 0
    assert removed.experiment.count == 400 and removed.experiment.outliers_removed == 2
    assert removed.experiment.max < 1e6


def test_outlier_removal_never_cuts_inside_the_1st_and_99th_percentiles() -> None:
    """Kayenta's reduced sensitivity: 3 spikes in 203 values reach past the 99th percentile
    position, so the largest one below it stays."""
    spiky = np.concatenate([OTHER, [1e6, 2e6, 3e6]])
    removed = classify_metric(BASE, spiky, MetricConfig(outlier_strategy="remove"))
    assert removed.experiment.outliers_removed == 2 and removed.experiment.max == 1e6


def test_same_input_same_result() -> None:
    """No random noise anywhere: two runs agree to the last bit."""
    for control, experiment in (([1.0] * 5, [2.0] * 5), (BASE, UP), (FEW_ERRORS, MANY_ERRORS)):
        first = classify_metric(control, experiment).to_dict()
        assert classify_metric(control, experiment).to_dict() == first


def test_labels_use_kayenta_spelling() -> None:
    assert [c.value for c in Classification] == [
        "Pass",
        "High",
        "Low",
        "Nodata",
        "NodataFailMetric",
        "Error",
    ]


LATENCY_P50 = {"direction": "increase", "allowed_increase": 1.5, "spread_test": True}
SPREAD_FLOOR_CASES: list[tuple[str, Any, dict[str, Any], Classification, str]] = [
    (
        "near_constant_series_fire_the_spread_test_without_a_floor",
        JITTERY_P50,
        {**LATENCY_P50, "spread_floor": 0.0},
        H,
        "canary spread is",
    ),
    (
        "tiny_shift_of_near_constant_series_skipped_below_the_floor",
        JITTERY_P50,
        {**LATENCY_P50, "spread_floor": 0.0005},
        P,
        "< spread_floor 0.0005",
    ),
    (
        "tiny_shift_of_near_constant_series_skipped_below_the_default_floor",
        JITTERY_P50,
        LATENCY_P50,
        P,
        "< spread_floor 0.000875 (default: (allowed_increase 1.5 - 1) x baseline mean 0.00175)",
    ),
    (
        "spread_blow_up_above_the_floor_is_high",
        BLOWN_P50,
        {**LATENCY_P50, "spread_floor": 0.0005},
        H,
        ">= spread_floor 0.0005",
    ),
    (
        "spread_blow_up_above_the_default_floor_is_high",
        BLOWN_P50,
        LATENCY_P50,
        H,
        ">= spread_floor 0.000875 (default",
    ),
]


@pytest.mark.parametrize(
    ("experiment", "options", "label", "reason"),
    [case[1:] for case in SPREAD_FLOOR_CASES],
    ids=[case[0] for case in SPREAD_FLOOR_CASES],
)
def test_spread_floor(
    experiment: Any, options: dict[str, Any], label: Classification, reason: str
) -> None:
    result = classify_metric(STEADY_P50, experiment, MetricConfig(**options))
    assert result.classification == label, result.reason
    assert reason in result.reason
    assert result.spread_ratio > 10  # relative to its baseline, every canary here "blew up"


def test_skipped_spread_test_says_why_and_records_what_it_measured() -> None:
    config = MetricConfig(direction="increase", allowed_increase=1.5, spread_floor=0.0005,
                          spread_test=True)
    result = classify_metric(STEADY_P50, JITTERY_P50, config)
    assert result.classification == Classification.PASS and not result.critical
    canary_spread = float(np.mean(np.abs(JITTERY_P50 - np.median(JITTERY_P50))))
    baseline_spread = float(np.mean(np.abs(STEADY_P50 - np.median(STEADY_P50))))
    assert 1e-6 < canary_spread < 1e-5  # microseconds: far below the floor
    assert result.spread_canary == pytest.approx(canary_spread)
    assert result.spread_baseline == pytest.approx(baseline_spread)
    assert result.spread_ratio == pytest.approx(canary_spread / baseline_spread)
    assert result.spread_p_value < 1e-6  # without the floor this would have been High
    said = f"spread test skipped: canary spread {canary_spread:.3g} ({result.spread_ratio:.3g}x"
    assert said in result.reason and result.reason.endswith("< spread_floor 0.0005")
    assert result.spread_floor == 0.0005
    assert result.to_dict()["spread_floor"] == 0.0005


def test_spread_blow_up_of_a_critical_metric_above_the_floor_is_critical() -> None:
    config = MetricConfig(direction="increase", critical=True, spread_floor=0.0005,
                          spread_test=True)
    result = classify_metric(STEADY_P50, BLOWN_P50, config)
    assert result.classification == Classification.HIGH and result.critical
    assert result.spread_canary > 0.0005 and "canary spread is" in result.reason


def test_default_floor_leaves_kayenta_defaults_and_cles_alone() -> None:
    """No band on the mean (allowed_increase 1.0) or no mean at all (CLES): no floor."""
    plain = classify_metric(BASE, WIDE, MetricConfig(spread_test=True))
    assert plain.classification == Classification.HIGH and plain.spread_floor == 0.0
    cles = MetricConfig(effect_size_measure="cles", allowed_increase=0.9, allowed_decrease=0.1,
                        spread_test=True)
    by_cles = classify_metric(BASE, WIDE, cles)
    assert by_cles.classification == Classification.HIGH and by_cles.spread_floor == 0.0


def test_floor_is_not_applied_when_the_location_already_decided() -> None:
    config = MetricConfig(spread_floor=1e6, spread_test=True)
    result = classify_metric(BASE, UP, config)
    assert result.classification == Classification.HIGH and "skipped" not in result.reason
    assert math.isnan(result.spread_floor) and result.spread_ratio > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"direction": "up"}, "direction is 'up'"),
        ({"nan_strategy": "zero"}, "nan_strategy is 'zero'"),
        ({"outlier_strategy": "drop"}, "outlier_strategy"),
        ({"effect_size_measure": "ratio"}, "effect_size_measure"),
        ({"tolerance": -0.1}, "tolerance is -0.1"),
        ({"confidence": 1.0}, "confidence is 1.0"),
        ({"confidence": "high"}, "expected a number"),
        ({"outlier_factor": 0}, "outlier_factor is 0"),
        ({"effect_size_measure": "cles", "allowed_increase": 1.5}, "allowed_increase is 1.5"),
        ({"critical": "yes"}, "critical is 'yes'"),
        ({"allowed_spread_increase": 0.5}, "allowed_spread_increase"),
        ({"test": "ttest"}, "test is 'ttest'"),
        ({"spread_floor": -0.001}, r"spread_floor is -0\.001 \(expected a finite number >= 0"),
        ({"spread_floor": math.inf}, "spread_floor is inf"),
        ({"spread_floor": "1ms"}, "spread_floor is '1ms'"),
        ({"spread_floor": True}, "spread_floor is True"),
    ],
)
def test_invalid_config_is_a_clear_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MetricConfig(**options)


def test_spread_floor_error_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError) as info:
        MetricConfig(spread_floor=-1)
    message = str(info.value)
    assert "in the metric's own units, e.g. 0.001 for 1 ms of a latency in seconds" in message
    assert "0 turns the floor off" in message and "spread_test: false" in message


def test_spread_floor_takes_whole_numbers_and_zero() -> None:
    assert MetricConfig(spread_floor=2).spread_floor == 2.0
    assert MetricConfig(spread_floor=0).spread_floor == 0.0
    assert MetricConfig().spread_floor is None


def test_config_takes_strings_and_stores_enums() -> None:
    config = MetricConfig(direction="increase", effect_size_measure="cles", allowed_increase=0.7)
    assert config.direction == "increase" and config.allowed_increase == 0.7
    assert MetricConfig().confidence == 0.98 and MetricConfig().tolerance == 0.25


def test_error_counts_are_compared_per_unit_of_exposure() -> None:
    """The same error counts over 100x less traffic: a far higher error rate."""
    errors = [1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    result = classify_metric(errors, errors, MetricConfig(), exposure=(10_000.0, 100.0))
    assert result.test == "rate" and result.classification == Classification.HIGH
    assert result.mean_ratio == pytest.approx(100.0)
    same_rate = classify_metric(errors, errors, MetricConfig(), exposure=(800.0, 800.0))
    assert same_rate.classification == Classification.PASS
    bad = classify_metric(errors, errors, MetricConfig(), exposure=(0.0, 10.0))
    assert bad.classification == Classification.ERROR and "exposure" in bad.reason


def test_config_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        MetricConfig("increase")  # type: ignore[call-arg]
