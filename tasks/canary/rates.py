"""Exact comparison of two Poisson rates, for sparse counts (errors that are mostly zero).

A rank test on a sample that is 95 % zeros has almost nothing to rank: its ties swamp it and the
interval of the shift collapses to [0, 0] whatever the canary does. Counts per interval are better
read as events over an exposure (the number of intervals). Given the total of both sides, the
canary's total is binomial with p0 = n_canary / (n_canary + n_baseline) when both rates are
equal, so the test and the Clopper-Pearson interval of that binomial give an exact p-value and an
exact interval of the rate ratio (as R's ``poisson.test(c(x, y), c(tx, ty))``). When the
exposure is known (requests served, while the samples count errors), it replaces the number of
intervals, so a canary taking 10 % of the traffic is compared per request, not per interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv
from scipy.stats import binom

from suite.errors import ConfigError
from tasks.canary.pairwise import FloatArray
from tasks.canary.ranksum import Interval

#: ``auto`` uses the rate test when at least this share of the pooled counts are zero
SPARSE_ZERO_SHARE = 0.5


def is_count_sample(values: FloatArray) -> bool:
    return bool(values.size) and bool(np.all(values >= 0) and np.all(values == np.floor(values)))


def is_sparse_counts(control: FloatArray, experiment: FloatArray) -> bool:
    if not (is_count_sample(control) and is_count_sample(experiment)):
        return False
    zeros = int(np.count_nonzero(control == 0) + np.count_nonzero(experiment == 0))
    return zeros >= SPARSE_ZERO_SHARE * (control.size + experiment.size)


@dataclass(frozen=True)
class RateTest:
    interval: Interval  # of the rate ratio canary / baseline
    p_value: float
    canary_events: int
    baseline_events: int


def binomial_p_value(x: int, n: int, p: float) -> float:
    """R's ``binom.test(x, n, p)$p.value``: two-sided, summing the outcomes no more likely
    than the one observed (with R's relative tolerance 1e-7)."""
    expected = n * p
    if x == expected:
        return 1.0
    limit = float(binom.pmf(x, n, p)) * (1 + 1e-7)
    if x < expected:
        tail = np.arange(math.ceil(expected), n + 1)
        y = int(np.count_nonzero(binom.pmf(tail, n, p) <= limit))
        total = float(binom.cdf(x, n, p)) + float(binom.sf(n - y, n, p))
    else:
        tail = np.arange(0, math.floor(expected) + 1)
        y = int(np.count_nonzero(binom.pmf(tail, n, p) <= limit))
        total = float(binom.cdf(y - 1, n, p)) + float(binom.sf(x - 1, n, p))
    return min(1.0, total)


def clopper_pearson(x: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion, as R's ``binom.test``."""
    alpha = 1.0 - confidence
    low = 0.0 if x == 0 else float(betaincinv(x, n - x + 1, alpha / 2))
    high = 1.0 if x == n else float(betaincinv(x + 1, n - x, 1 - alpha / 2))
    return low, high


def _ratio(p: float, exposure_ratio: float) -> float:
    """Binomial share of the canary -> rate ratio; exposure_ratio = n_baseline / n_canary."""
    if p >= 1.0:
        return math.inf
    return p / (1.0 - p) * exposure_ratio


def rate_test(
    control: FloatArray,
    experiment: FloatArray,
    confidence: float,
    exposure: tuple[float, float] | None = None,
) -> RateTest:
    """Compare event rates. ``exposure`` is (baseline, canary) exposure, e.g. request counts
    when the samples are error counts; by default each sample is one unit of exposure."""
    canary_events = round(float(experiment.sum()))
    baseline_events = round(float(control.sum()))
    n_baseline, n_canary = exposure if exposure is not None else (control.size, experiment.size)
    if not (n_baseline > 0 and n_canary > 0):
        raise ConfigError(
            f"exposure is baseline {n_baseline!r}, canary {n_canary!r} (expected both > 0)"
        )
    exposure_ratio = n_baseline / n_canary
    total = canary_events + baseline_events
    if total == 0:
        interval = Interval(low=0.0, high=math.inf, estimate=math.nan, confidence=confidence)
        return RateTest(interval, 1.0, 0, 0)
    p_value = binomial_p_value(canary_events, total, n_canary / (n_canary + n_baseline))
    share_low, share_high = clopper_pearson(canary_events, total, confidence)
    estimate = (
        math.inf
        if baseline_events == 0
        else (canary_events / n_canary) / (baseline_events / n_baseline)
    )
    interval = Interval(
        low=_ratio(share_low, exposure_ratio),
        high=_ratio(share_high, exposure_ratio),
        estimate=estimate,
        confidence=confidence,
    )
    return RateTest(interval, p_value, canary_events, baseline_events)
