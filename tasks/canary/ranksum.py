"""Wilcoxon rank-sum (Mann-Whitney) test and confidence interval for a location shift.

This is the statistic of R's ``wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE)``
with ``x`` the experiment (canary) and ``y`` the control (baseline), solved exactly.

For a shift d, R ranks ``c(x - d, y)`` and computes::

    dz(d) = U(d) - m·n/2           U(d) = #{x_i - d > y_j} + ½·#{x_i - d = y_j}
    sigma(d)² = m·n/12 · (N + 1 - Σ(t³ - t) / (N·(N - 1)))     t: sizes of tie groups at d
    W(d)  = (dz - ½·sign(dz)) / sigma(d)

U(d) only changes where d crosses a pairwise difference ``x_i - y_j``, and between two of them
the only ties are those inside x and inside y, which no shift changes: there sigma is a constant
sigma0. W is therefore a non-increasing step function whose steps sit at the differences, and
R's ``uniroot`` (absolute tolerance 1e-4) merely homes in on the step where W crosses ``±z``. With
``c(d) = #{x_i - y_j <= d}`` on the open pieces, ``W > z  <=>  c < m·n/2 - ½ - z·sigma0``, so

    lower end = D[⌈m·n/2 - ½ - z·sigma0⌉]       upper end = D[⌊m·n/2 + ½ + z·sigma0⌋ + 1]

(1-based order statistics of the differences, clamped to 1..m·n like R's ``mumin``/``mumax``).
The Hodges-Lehmann estimate is the median of the differences. The p-value is R's: the same
statistic at d = 0 with the ties of the pooled sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from suite.errors import ConfigError
from tasks.canary.pairwise import FloatArray, order_statistics, select_next


@dataclass(frozen=True)
class Interval:
    """A confidence interval for the shift ``experiment - control`` and its point estimate."""

    low: float
    high: float
    estimate: float
    confidence: float = 0.95


@dataclass(frozen=True)
class RankSumTest:
    """Everything the rank-sum comparison computed, for the report."""

    interval: Interval
    p_value: float
    u_statistic: float  # R's W: Mann-Whitney U of the experiment
    z: float
    n_experiment: int
    n_control: int


def as_sample(values: Any, name: str) -> FloatArray:
    """A finite, non-empty 1-D float array, or a ConfigError saying what is wrong."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of numbers ({exc})") from exc
    if array.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional (got shape {array.shape})")
    if array.size == 0:
        raise ConfigError(f"{name} is empty (expected at least one value)")
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ConfigError(f"{name} has {bad} NaN or infinite values (expected finite numbers)")
    return array


def check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence is {confidence!r} (expected a number between 0 and 1)")
    return float(confidence)


def _tie_term(sorted_values: FloatArray) -> float:
    """Σ(t³ - t) over the groups of equal values of a sorted array."""
    if sorted_values.size < 2:
        return 0.0
    equal = np.diff(sorted_values) == 0
    if not equal.any():
        return 0.0
    breaks = np.flatnonzero(~equal)
    edges = np.concatenate(([0], breaks + 1, [sorted_values.size]))
    sizes = np.diff(edges).astype(np.float64)
    return float(np.sum(sizes**3 - sizes))


def _u_and_pooled_ties(
    xs: FloatArray, ys: FloatArray, tie_x: float, tie_y: float
) -> tuple[float, float]:
    """Mann-Whitney U of xs at shift 0 and the tie term of the pooled sample (sorted inputs).
    Without a value shared by both samples the pooled ties are just each sample's own."""
    below = np.searchsorted(ys, xs, side="left")
    through = np.searchsorted(ys, xs, side="right")
    shared = int((through - below).sum())
    u = float(below.sum()) + 0.5 * shared
    if shared == 0:
        return u, tie_x + tie_y
    return u, _tie_term(np.sort(np.concatenate((xs, ys))))


def _sigma(m: int, n: int, tie_term: float) -> float:
    total = m + n
    if total < 2:
        return 0.0
    variance = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
    return math.sqrt(max(variance, 0.0))


def _order_ranks(m: int, n: int, z: float, sigma0: float) -> tuple[int, int]:
    """0-based ranks of the interval ends among the m·n sorted differences."""
    mn = m * n
    lower = math.ceil(mn / 2.0 - 0.5 - z * sigma0)
    upper = math.floor(mn / 2.0 + 0.5 + z * sigma0) + 1
    return min(max(lower, 1), mn) - 1, min(max(upper, 1), mn) - 1


def _hodges_lehmann(xs: FloatArray, ys: FloatArray, first: float) -> float:
    mn = xs.shape[0] * ys.shape[0]
    if mn % 2:
        return first
    return 0.5 * (first + select_next(xs, ys, mn // 2 - 1, first))


def rank_sum_test(experiment: Any, control: Any, confidence: float = 0.95) -> RankSumTest:
    """Interval, estimate and two-sided p-value of the rank-sum comparison."""
    confidence = check_confidence(confidence)
    xs = np.sort(as_sample(experiment, "experiment"))
    ys = np.sort(as_sample(control, "control"))
    return rank_sum_sorted(xs, ys, confidence)


def rank_sum_sorted(xs: FloatArray, ys: FloatArray, confidence: float) -> RankSumTest:
    """``rank_sum_test`` on validated, sorted samples (the judge sorts once and reuses)."""
    m, n = xs.shape[0], ys.shape[0]
    mn = m * n
    tie_x, tie_y = _tie_term(xs), _tie_term(ys)
    sigma0 = _sigma(m, n, tie_x + tie_y)
    z_crit = float(ndtri(1.0 - (1.0 - confidence) / 2.0))
    low_rank, high_rank = _order_ranks(m, n, z_crit, sigma0)
    low, high, median_low = order_statistics(xs, ys, [low_rank, high_rank, (mn - 1) // 2])
    estimate = _hodges_lehmann(xs, ys, median_low)

    u, pooled_ties = _u_and_pooled_ties(xs, ys, tie_x, tie_y)
    sigma = _sigma(m, n, pooled_ties)
    dz = u - mn / 2.0
    if sigma > 0:
        z = (dz - 0.5 * math.copysign(1.0, dz) * (dz != 0)) / sigma
        p_value = float(min(1.0, 2.0 * ndtr(-abs(z))))
    else:
        z, p_value = 0.0, 1.0
    return RankSumTest(
        interval=Interval(low=low, high=high, estimate=estimate, confidence=confidence),
        p_value=p_value,
        u_statistic=u,
        z=float(z),
        n_experiment=m,
        n_control=n,
    )


def wilcoxon_interval(experiment: Any, control: Any, confidence: float = 0.95) -> Interval:
    """Two-sided rank-sum confidence interval for ``experiment - control`` (exact ends)."""
    return rank_sum_test(experiment, control, confidence).interval


def one_sided_greater_p(experiment: FloatArray, control: FloatArray) -> float:
    """R's ``wilcox.test(x, y, alternative="greater", exact=FALSE)$p.value`` (x stochastically
    larger), used by the spread test on absolute deviations."""
    xs, ys = np.sort(experiment), np.sort(control)
    m, n = xs.shape[0], ys.shape[0]
    u, pooled_ties = _u_and_pooled_ties(xs, ys, _tie_term(xs), _tie_term(ys))
    sigma = _sigma(m, n, pooled_ties)
    if sigma == 0:
        return 1.0
    return float(ndtr(-(u - m * n / 2.0 - 0.5) / sigma))
