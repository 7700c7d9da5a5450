"""The rank-sum interval: R's reference values, an exact brute-force oracle, and the large-sample
selection path against a full sort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from suite.errors import ConfigError
from tasks.canary import pairwise
from tasks.canary.judge import Interval, rank_sum_test, wilcoxon_interval
from tasks.canary.ranksum import one_sided_greater_p
from tests.unit.canary.oracle import oracle_interval

REFERENCE = json.loads((Path(__file__).parent / "r_reference.json").read_text())
R_CASES = REFERENCE["wilcox_interval"]


@pytest.mark.parametrize("case", R_CASES, ids=[c["name"] for c in R_CASES])
def test_interval_matches_r_within_its_root_tolerance(case: dict) -> None:
    x, y = np.array(case["experiment"]), np.array(case["control"])
    result = rank_sum_test(x, y, case["confidence"])
    assert result.interval.low == pytest.approx(case["low"], abs=1e-4)
    assert result.interval.high == pytest.approx(case["high"], abs=1e-4)
    assert result.p_value == pytest.approx(case["p_value"], rel=1e-9, abs=1e-300)
    assert result.u_statistic == case["W"]


@pytest.mark.parametrize("case", R_CASES, ids=[c["name"] for c in R_CASES])
def test_interval_ends_are_pairwise_differences_and_estimate_is_their_median(case: dict) -> None:
    x, y = np.array(case["experiment"]), np.array(case["control"])
    diffs = np.subtract.outer(x, y).ravel()
    interval = wilcoxon_interval(x, y, case["confidence"])
    assert interval.low in diffs and interval.high in diffs
    assert interval.low <= interval.estimate <= interval.high
    assert interval.estimate == np.median(diffs)


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    m, n = (int(v) for v in rng.integers(1, 16, size=2))
    if rng.random() < 0.5:  # continuous
        x, y = rng.normal(0.3, 1, m), rng.normal(0, 1, n)
    else:  # dyadic grid: exact subtraction, many ties within and across samples
        x, y = rng.integers(0, 6, m) / 4.0, rng.integers(0, 6, n) / 4.0
    return x, y, float(rng.choice([0.8, 0.9, 0.95, 0.98, 0.99]))


@pytest.mark.parametrize("seed", range(12))
def test_interval_equals_brute_force_oracle_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(15):
        x, y, confidence = _random_case(rng)
        interval = wilcoxon_interval(x, y, confidence)
        assert (interval.low, interval.high) == oracle_interval(x, y, confidence), (x, y)
        assert interval.estimate == np.median(np.subtract.outer(x, y))


def test_interval_is_exact_at_any_scale() -> None:
    """Latencies in seconds: R's 1e-4 root tolerance would be larger than the effect itself."""
    rng = np.random.default_rng(3)
    x, y = rng.lognormal(-7, 0.3, 12), rng.lognormal(-7.1, 0.3, 14)
    interval = wilcoxon_interval(x, y, 0.95)
    assert (interval.low, interval.high) == oracle_interval(x, y, 0.95)
    scaled = wilcoxon_interval(x * 1e6, y * 1e6, 0.95)
    assert scaled.low == pytest.approx(interval.low * 1e6, rel=1e-12)
    assert scaled.high == pytest.approx(interval.high * 1e6, rel=1e-12)


SAMPLES = {
    "lognormal": lambda rng, m, n: (rng.lognormal(0, 0.5, m), rng.lognormal(0.05, 0.5, n)),
    "decimal_ties": lambda rng, m, n: (
        np.round(rng.normal(1, 0.3, m), 1),
        np.round(rng.normal(1.05, 0.3, n), 1),
    ),
    "sparse_counts": lambda rng, m, n: (
        rng.poisson(0.3, m).astype(float),
        rng.poisson(0.4, n).astype(float),
    ),
    "one_constant": lambda rng, m, n: (np.full(m, 0.7), rng.normal(0.5, 0.2, n)),
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_selection_path_agrees_with_a_full_sort(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    m, n = 400, 350  # m·n = 140000 > DIRECT_LIMIT: the bracketing selection runs
    assert m * n > pairwise.DIRECT_LIMIT
    x, y = SAMPLES[kind](rng, m, n)
    xs, ys = np.sort(x), np.sort(y)
    everything = np.sort(np.subtract.outer(xs, ys).ravel())
    ranks = [0, 1, 7, 5000, 69_999, 70_000, 123_456, m * n - 1]
    assert pairwise.order_statistics(xs, ys, ranks) == [everything[k] for k in ranks]
    for k in ranks[:-1]:
        assert pairwise.select_next(xs, ys, k, float(everything[k])) == everything[k + 1]
    interval = wilcoxon_interval(x, y, 0.98)
    assert interval.estimate == np.median(everything)
    assert interval.low in everything and interval.high in everything


def test_counts_follow_the_computed_differences_not_the_rearranged_subtraction() -> None:
    """0.7 - 0.5 rounds below 0.2 - 0.0: a count built on ``x - v`` alone would miss it."""
    xs, ys = np.array([0.2, 0.7]), np.array([0.0, 0.5])
    value = 0.2 - 0.0
    expected = int(np.sum(np.subtract.outer(xs, ys) <= value))
    assert pairwise.count_at_most(xs, ys, value) == expected


def test_one_sided_p_value_matches_r() -> None:
    for case in REFERENCE["wilcox_greater"]:
        got = one_sided_greater_p(np.array(case["x"]), np.array(case["y"]))
        assert got == pytest.approx(case["p_value"], rel=1e-9), case["name"]


def test_interval_is_a_frozen_value() -> None:
    interval = wilcoxon_interval([1.0, 2.0, 3.0], [0.0, 1.0])
    assert isinstance(interval, Interval)
    with pytest.raises(AttributeError):
        interval.low = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("experiment", "control", "confidence", "message"),
    [
        ([], [1.0], 0.95, "experiment is empty"),
        ([1.0], [float("nan")], 0.95, "control has 1 NaN"),
        ([1.0], [2.0], 1.5, "confidence is 1.5"),
        ([[1.0, 2.0]], [2.0], 0.95, "one-dimensional"),
        (["a"], [2.0], 0.95, "sequence of numbers"),
    ],
)
def test_bad_input_is_a_config_error(
    experiment: list, control: list, confidence: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        wilcoxon_interval(experiment, control, confidence)
