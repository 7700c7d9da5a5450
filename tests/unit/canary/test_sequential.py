"""Sequential monitors: the martingale against brute force, the API's outcomes, edge cases and
errors. Type-I error and power by simulation are in test_sequential_simulation.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import comb, logsumexp
from scipy.stats import binom

from suite.errors import ConfigError
from tasks.canary.sequential import (
    RATE_GRID,
    TILT_GRID,
    HistogramMonitor,
    InvalidCounts,
    RateMonitor,
    SequentialResult,
    _tilt_loglik_direct,
    _tilt_loglik_saddle,
    tilt_loglik,
)

INF = math.inf
BOUNDS = (0.001, 0.01, 0.1, INF)


def brute_rate_martingale(steps: list[tuple[int, float, int, float]], direction: str) -> float:
    """sum_j w_j prod_i Binom(x_i; n_i, p_i(theta_j)) / Binom(x_i; n_i, p_i(1)), term by term."""
    worse = {"increase": RATE_GRID > 0, "decrease": RATE_GRID < 0}[direction]
    weights = worse / worse.sum()
    total = 0.0
    for weight, log_theta in zip(weights, RATE_GRID, strict=True):
        if weight == 0:
            continue
        ratio = 1.0
        for x_c, e_c, x_b, e_b in steps:
            n, r = x_c + x_b, e_c / e_b
            p1 = math.exp(log_theta) * r / (math.exp(log_theta) * r + 1)
            ratio *= binom.pmf(x_c, n, p1) / binom.pmf(x_c, n, r / (r + 1))
        total += weight * ratio
    return total


def feed_rate(monitor: RateMonitor, steps: list[tuple[int, float, int, float]]) -> SequentialResult:
    totals = np.zeros(4)
    result = monitor.result()
    for step in steps:
        totals += step
        result = monitor.update(*totals)
    return result


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_rate_martingale_matches_brute_force_product_of_binomials(direction: str) -> None:
    steps = [(2, 10.0, 1, 40.0), (0, 5.0, 3, 45.0), (3, 20.0, 1, 20.0)]
    result = feed_rate(RateMonitor(alpha=0.05, direction=direction), steps)
    assert result.statistic == pytest.approx(math.log(brute_rate_martingale(steps, direction)))


@pytest.mark.parametrize("direction", ["increase", "either"])
def test_rate_martingale_has_expectation_one_under_equal_rates(direction: str) -> None:
    """Exact enumeration of two intervals (n = 4 then 3 events, shares 0.2 then 0.5)."""
    expected = 0.0
    for x1, x2 in itertools.product(range(5), range(4)):
        monitor = RateMonitor(alpha=0.05, direction=direction)
        monitor.update(x1, 1.0, 4 - x1, 4.0)
        result = monitor.update(x1 + x2, 4.0, 7 - x1 - x2, 7.0)
        probability = binom.pmf(x1, 4, 0.2) * binom.pmf(x2, 3, 0.5)
        expected += probability * math.exp(result.statistic)
    assert expected == pytest.approx(1.0, abs=1e-9)


def brute_tilt(x: list[int], n: list[int], beta: float) -> float:
    """log P_beta(x) / P_0(x) by enumerating every allocation with the canary's total."""
    m = sum(x)

    def weight(alloc: tuple[int, ...], b: float) -> float:
        return math.prod(comb(nk, ak) * math.exp(b * k * ak) for k, (nk, ak) in
                         enumerate(zip(n, alloc, strict=True)))

    allocs = [a for a in itertools.product(*(range(nk + 1) for nk in n)) if sum(a) == m]
    p1 = weight(tuple(x), beta) / sum(weight(a, beta) for a in allocs)
    p0 = weight(tuple(x), 0.0) / sum(weight(a, 0.0) for a in allocs)
    return math.log(p1 / p0)


@pytest.mark.parametrize(("x", "y"), [([1, 0, 2, 1], [3, 2, 0, 1]),   # m < N/2
                                      ([2, 3, 1, 0], [0, 1, 1, 0]),   # m > N/2: mirrored path
                                      ([0, 4, 0, 0], [0, 1, 0, 0])])  # one bucket only: LR 1
def test_tilt_likelihood_matches_enumeration_of_allocations(x: list[int], y: list[int]) -> None:
    got = tilt_loglik(np.array(x, float), np.array(y, float), TILT_GRID)
    n = [a + b for a, b in zip(x, y, strict=True)]
    for index in (0, 30, 50, 64, 100):
        assert got[index] == pytest.approx(brute_tilt(x, n, TILT_GRID[index]), abs=1e-9)


@pytest.mark.parametrize(("x", "y"), [([1, 0, 2, 1], [3, 2, 0, 1]),
                                      ([0, 1, 1, 0, 2], [1, 0, 3, 2, 0]),
                                      ([2, 0, 0, 0, 0, 1], [0, 1, 0, 2, 0, 1])])  # far buckets
def test_direct_tilt_matches_enumeration_at_every_grid_point(x: list[int], y: list[int]) -> None:
    xa, ya = np.array(x, float), np.array(y, float)
    n = xa + ya
    got = _tilt_loglik_direct(xa, n, TILT_GRID, float(n.sum()), float(xa.sum()))
    assert got is not None
    for index, beta in enumerate(TILT_GRID):
        assert got[index] == pytest.approx(brute_tilt(x, [int(v) for v in n], beta), abs=1e-9)


def test_direct_and_saddle_tilt_agree_on_random_counts() -> None:
    """The fast path and the general one compute the same exact ratio (1000 random cases over
    20 buckets, the canary's share the smaller one as tilt_loglik arranges)."""
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(1000):
        x, y = np.zeros(20), np.zeros(20)
        used = rng.choice(20, int(rng.integers(2, 21)), replace=False)
        x[used] = rng.poisson(rng.uniform(0, 2), used.size)
        y[used] = rng.poisson(rng.uniform(0, 30), used.size)
        n = x + y
        total, m = float(n.sum()), float(x.sum())
        if m == 0 or 2 * m > total or np.count_nonzero(n) < 2:
            continue
        direct = _tilt_loglik_direct(x, n, TILT_GRID, total, m)
        if direct is None:
            continue
        saddle = _tilt_loglik_saddle(x, n, TILT_GRID, total, m)
        assert np.all(np.isfinite(saddle))
        assert np.allclose(direct, saddle, rtol=1e-9, atol=1e-9)
        compared += 1
    assert compared > 500


def test_direct_tilt_leaves_many_observations_to_the_saddle_path() -> None:
    x = np.array([0, 50, 30, 5, 0], float)
    y = np.array([900, 1200, 400, 100, 3], float)
    n = x + y
    assert _tilt_loglik_direct(x, n, TILT_GRID, float(n.sum()), float(x.sum())) is None
    assert np.all(np.isfinite(tilt_loglik(x, y, TILT_GRID)))


def test_saddle_tilt_is_finite_at_the_grid_ends_over_twenty_buckets() -> None:
    """Found by comparing the two paths: 8 Newton steps left the saddle short at beta = -5 over
    buckets 0..19, and the coefficient underflowed to log(0)."""
    x = np.array([0] * 10 + [4, 2, 0, 0, 0, 6, 2, 1, 1, 2], float)
    y = np.array([32, 22] + [0] * 8 + [21, 35, 0, 0, 0, 28, 34, 36, 29, 26], float)
    n = x + y
    saddle = _tilt_loglik_saddle(x, n, TILT_GRID, float(n.sum()), float(x.sum()))
    direct = _tilt_loglik_direct(x, n, TILT_GRID, float(n.sum()), float(x.sum()))
    assert np.all(np.isfinite(saddle)) and direct is not None
    assert np.allclose(direct, saddle, rtol=1e-9, atol=1e-9)


def test_tilt_likelihood_has_expectation_one_under_the_central_hypergeometric() -> None:
    n = [2, 1, 3]
    allocs = [a for a in itertools.product(*(range(k + 1) for k in n)) if sum(a) == 3]
    total = math.comb(sum(n), 3)
    expected = np.zeros_like(TILT_GRID)
    for alloc in allocs:
        x = np.array(alloc, float)
        prob = math.prod(math.comb(k, a) for k, a in zip(n, alloc, strict=True)) / total
        expected += prob * np.exp(tilt_loglik(x, np.array(n, float) - x, TILT_GRID))
    assert np.allclose(expected, 1.0, atol=1e-9)


def test_tilt_likelihood_handles_large_counts_without_overflow() -> None:
    x = np.array([0, 50, 300, 50, 0], float)
    y = np.array([900, 1200, 400, 100, 3], float)
    got = tilt_loglik(x, y, TILT_GRID)
    assert np.all(np.isfinite(got)) and got[50] == pytest.approx(0.0, abs=1e-9)
    assert got.max() > 100  # the canary sits a bucket higher: overwhelming evidence


def test_rate_rejects_canary_errors_against_a_clean_baseline() -> None:
    monitor = RateMonitor(alpha=0.01)
    crossed = None
    for second in range(1, 61):  # 4 canary / 16 baseline requests a second, canary error every 5 s
        result = monitor.update(second // 5, 4 * second, 0, 16 * second)
        if result.reject and crossed is None:
            crossed = second
    assert crossed is not None and crossed <= 20  # four errors: 5^4 x prior mass > 1/alpha
    assert result.confidence_sequence[0] > 1 and result.confidence_sequence[1] == INF
    assert result.counts == {"canary_events": 12, "canary_exposure": 240,
                             "baseline_events": 0, "baseline_exposure": 960}
    assert "<= alpha 0.01" in result.reason and "rate ratio inf" in result.reason


def test_rate_increase_ignores_a_canary_with_fewer_errors() -> None:
    monitor = RateMonitor(alpha=0.01, direction="increase")
    result = feed_rate(monitor, [(0, 40.0, 20, 160.0)] * 10)
    assert not result.reject and result.p_value == 1.0
    assert result.estimate < 0.01 and result.confidence_sequence[1] < 1.5  # one-sided prior
    either = feed_rate(RateMonitor(alpha=0.01, direction="either"), [(0, 40.0, 20, 160.0)] * 10)
    assert either.reject


def test_p_value_never_increases_and_a_rejection_is_final() -> None:
    monitor = RateMonitor(alpha=0.05)
    steps = [(3, 4, 0, 16)] * 3 + [(0, 4, 4, 16)] * 30  # bad start, then the canary recovers
    p_values, statistics = [], []
    totals = np.zeros(4)
    for step in steps:
        totals += step
        result = monitor.update(*totals)
        p_values.append(result.p_value)
        statistics.append(result.statistic)
    assert all(b <= a for a, b in itertools.pairwise(p_values))
    assert result.reject and statistics[-1] < math.log(20)  # evidence faded, p did not come back


@pytest.mark.parametrize(
    ("steps", "why"),
    [([(0, 0, 0, 0)] * 5, "no traffic yet"),
     ([(0, 4, 0, 16)] * 5, "all-zero error counts"),
     ([(0, 0, 3, 20)] * 5, "canary weight 0 %"),
     ([(3, 20, 0, 0)] * 5, "canary weight 100 %")],
)
def test_rate_without_information_stays_at_p_one(steps: list, why: str) -> None:
    result = feed_rate(RateMonitor(), steps)
    assert result.p_value == 1.0 and not result.reject, why
    assert result.updates == 5 and result.confidence_sequence == (0.0, INF)


@pytest.mark.parametrize(
    ("counts", "message"),
    [((-1, 10, 0, 10), "canary_events is -1.0 (expected a finite count >= 0)"),
     ((1.5, 10, 0, 10), "canary_events is 1.5 (expected a whole number"),
     ((0, math.nan, 0, 10), "canary_exposure is nan"),
     ((0, 10, 0, "10"), "baseline_exposure is '10' (expected a number)"),
     ((3, 0, 0, 10), "canary counted 3 events with no new exposure")],
)
def test_rate_invalid_counts_name_the_value(counts: tuple, message: str) -> None:
    with pytest.raises(InvalidCounts, match=None) as caught:
        RateMonitor().update(*counts)
    assert message in str(caught.value)


def test_rate_decreasing_counter_is_an_error_and_leaves_the_monitor_unchanged() -> None:
    monitor = RateMonitor()
    before = monitor.update(2, 40, 1, 160)
    with pytest.raises(InvalidCounts, match=r"canary_exposure went down from 40 to 3 .*reset"):
        monitor.update(2, 3, 1, 170)
    assert monitor.result() == before
    assert monitor.update(2, 44, 1, 176).updates == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 0}, "sequential alpha is 0"), ({"alpha": 1.5}, "sequential alpha is 1.5"),
     ({"alpha": True}, "sequential alpha is True"),
     ({"direction": "up"}, "sequential direction is 'up' (expected one of 'either'")],
)
def test_monitor_settings_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        RateMonitor(**kwargs)
    assert message in str(caught.value)
    with pytest.raises(ConfigError):
        HistogramMonitor(BOUNDS, **kwargs)


def test_histogram_rejects_the_demo_fault_at_the_first_scrape() -> None:
    """+40 ms on a 0.7 ms service: all 4 canary requests of the second land buckets above."""
    monitor = HistogramMonitor(BOUNDS, alpha=0.01)
    result = monitor.update([0, 0, 4, 4], [16, 16, 16, 16])
    assert result.reject and result.updates == 1
    assert result.counts["canary"] == [0, 0, 4, 0] and result.counts["baseline"] == [16, 0, 0, 0]
    assert result.counts["shares"][2] == {"le": 0.1, "canary": 1.0, "baseline": 0.0}
    assert result.effect == "bucket_odds_ratio" and result.confidence_sequence[0] > 1


def test_histogram_increase_ignores_a_faster_canary() -> None:
    monitor = HistogramMonitor(BOUNDS, alpha=0.01)
    result = monitor.result()
    for second in range(1, 31):
        result = monitor.update([4 * second] * 4, [0, 16 * second, 16 * second, 16 * second])
    assert not result.reject and result.p_value == 1.0
    assert result.estimate < 1 and result.confidence_sequence[1] < 1.25  # the next grid point


@pytest.mark.parametrize(
    ("canary", "baseline", "why"),
    [([0, 0, 0, 0], [0, 0, 0, 0], "no traffic yet"),
     ([0, 0, 0, 0], [5, 9, 9, 9], "canary weight 0 %"),
     ([5, 9, 9, 9], [0, 0, 0, 0], "canary weight 100 %"),
     ([0, 3, 3, 3], [0, 12, 12, 12], "every observation in one bucket")],
)
def test_histogram_without_information_stays_at_p_one(canary: list, baseline: list, why: str):
    result = HistogramMonitor(BOUNDS).update(canary, baseline)
    assert result.p_value == 1.0 and not result.reject, why


@pytest.mark.parametrize(
    ("bounds", "canary", "baseline", "message"),
    [(BOUNDS, [0, 1, 2], [0, 1, 2, 3], "canary has 3 buckets, the monitor 4"),
     (BOUNDS, [0, 1, 2, 3], [0, 3, 2, 3], "baseline bucket le=0.1 counts 2 < 3 at le=0.01"),
     (BOUNDS, [0, 1, 2, -3], [0, 1, 2, 3], "canary bucket le=inf is -3.0"),
     (BOUNDS, [0, 1, 2.5, 3], [0, 1, 2, 3], "canary bucket le=0.1 is 2.5 (expected a whole")],
)
def test_histogram_invalid_buckets_name_the_value(bounds, canary, baseline, message) -> None:
    with pytest.raises(InvalidCounts) as caught:
        HistogramMonitor(bounds).update(canary, baseline)
    assert message in str(caught.value)


def test_histogram_counter_reset_is_an_error() -> None:
    monitor = HistogramMonitor(BOUNDS)
    monitor.update([1, 2, 3, 4], [4, 8, 12, 16])
    with pytest.raises(InvalidCounts, match=r"canary bucket le=0.001 went down from 1 to 0"):
        monitor.update([0, 0, 0, 1], [5, 9, 13, 17])
    with pytest.raises(InvalidCounts, match="gained fewer observations than a lower one"):
        monitor.update([3, 3, 3, 4], [4, 8, 12, 16])


@pytest.mark.parametrize(
    ("bounds", "message"),
    [((0.1, 0.2), r"with \+Inf last"), ((INF,), "at least one finite bound"),
     ((0.2, 0.1, INF), "not strictly increasing"), ((0.1, 0.1, INF), "not strictly increasing")],
)
def test_histogram_bounds_are_validated(bounds: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HistogramMonitor(bounds)


def test_result_to_dict_is_json_ready() -> None:
    import json

    result = RateMonitor().update(5, 20, 0, 80)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["effect"] == "rate_ratio" and data["confidence_sequence"][1] == "inf"
    assert data["p_value"] == result.p_value and data["reject"] is result.reject


def test_mixture_is_a_log_sum_of_the_grid() -> None:
    """The statistic is log sum_j w_j L(theta_j): recomputed from the public grid."""
    monitor = RateMonitor(alpha=0.05)
    result = monitor.update(4, 10, 2, 30)
    r = 10 / 30
    loglik = 4 * RATE_GRID - 6 * (np.logaddexp(RATE_GRID + math.log(r), 0) - math.log1p(r))
    prior = np.where(RATE_GRID > 0, 1.0, 0.0)
    prior /= prior.sum()
    with np.errstate(divide="ignore"):
        assert result.statistic == pytest.approx(float(logsumexp(np.log(prior) + loglik)))
