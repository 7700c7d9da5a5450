"""Sequential monitors by simulation (seeded): false alarms stay at alpha when the test is looked
at every scrape, and real regressions are caught in seconds. The demo's traffic: 20 requests/s,
canary at 20 % (4 canary and 16 baseline requests per 1 s scrape). bench/canary_sequential.py
runs the same with 1000 trials and records the figures in bench/RESULTS.md."""

from __future__ import annotations

import math

import numpy as np

from tasks.canary.sequential import HistogramMonitor, RateMonitor

BOUNDS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01, 0.025,
          0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)  # the model server's buckets
CANARY_RPS, BASELINE_RPS = 4, 16


def rate_trial(rng: np.random.Generator, canary_error: float, baseline_error: float, looks: int,
               alpha: float) -> int | None:
    """The look at which RateMonitor rejects, or None."""
    monitor = RateMonitor(alpha=alpha)
    totals = np.zeros(4)
    for look in range(1, looks + 1):
        served = rng.poisson((CANARY_RPS, BASELINE_RPS))
        errors = rng.binomial(served, (canary_error, baseline_error))
        totals += (errors[0], served[0], errors[1], served[1])
        if monitor.update(*totals).reject:
            return look
    return None


def cumulative_buckets(latencies: np.ndarray) -> np.ndarray:
    return np.cumsum(np.bincount(np.searchsorted(BOUNDS, latencies), minlength=len(BOUNDS)))


def histogram_trial(rng: np.random.Generator, canary_median: float, added: float, looks: int,
                    alpha: float) -> int | None:
    monitor = HistogramMonitor(BOUNDS, alpha=alpha)
    canary, baseline = np.zeros(len(BOUNDS)), np.zeros(len(BOUNDS))
    for look in range(1, looks + 1):
        c, b = rng.poisson((CANARY_RPS, BASELINE_RPS))
        canary += cumulative_buckets(rng.lognormal(math.log(canary_median), 0.3, c) + added)
        baseline += cumulative_buckets(rng.lognormal(math.log(0.0007), 0.3, b))
        if monitor.update(canary, baseline).reject:
            return look
    return None


def test_rate_aa_false_alarms_stay_below_alpha_over_300_looks() -> None:
    rng = np.random.default_rng(20220814)
    alarms = [rate_trial(rng, 0.02, 0.02, looks=300, alpha=0.05) for _ in range(100)]
    rate = sum(a is not None for a in alarms) / len(alarms)
    assert rate <= 0.05, f"{rate:.3f} of 100 A/A trials rejected at alpha 0.05"


def test_histogram_aa_false_alarms_stay_below_alpha_over_60_looks() -> None:
    rng = np.random.default_rng(20221128)
    alarms = [histogram_trial(rng, 0.0007, 0.0, looks=60, alpha=0.1) for _ in range(50)]
    rate = sum(a is not None for a in alarms) / len(alarms)
    assert rate <= 0.1, f"{rate:.3f} of 50 A/A trials rejected at alpha 0.1"


def test_histogram_catches_the_demo_fault_within_five_seconds() -> None:
    """+40 ms on a 0.7 ms service (the demo's v3), alpha 0.01."""
    rng = np.random.default_rng(3)
    looks = [histogram_trial(rng, 0.0007, 0.040, looks=30, alpha=0.01) for _ in range(40)]
    assert all(look is not None and look <= 5 for look in looks), looks


def test_histogram_catches_a_median_half_again_as_slow() -> None:
    rng = np.random.default_rng(4)
    looks = [histogram_trial(rng, 0.00105, 0.0, looks=120, alpha=0.01) for _ in range(20)]
    detected = sorted(look for look in looks if look is not None)
    assert len(detected) >= 18 and detected[len(detected) // 2] <= 60, looks


def test_rate_catches_five_percent_errors_against_none_near_the_oracle() -> None:
    """The oracle SPRT needs 3 canary errors (one per ~5 s); the mixture needs 4."""
    rng = np.random.default_rng(5)
    looks = [rate_trial(rng, 0.05, 0.0, looks=120, alpha=0.01) for _ in range(100)]
    detected = sorted(look for look in looks if look is not None)
    assert len(detected) >= 98
    assert detected[len(detected) // 2] <= 25  # median seconds; the oracle's is about 14


def test_rate_catches_one_percent_errors_against_a_tenth_of_that() -> None:
    rng = np.random.default_rng(6)
    looks = [rate_trial(rng, 0.01, 0.001, looks=600, alpha=0.01) for _ in range(60)]
    detected = sorted(look for look in looks if look is not None)
    assert len(detected) >= 54 and detected[len(detected) // 2] <= 240, detected
