"""Anytime-valid sequential tests of a canary against its baseline, fed at every scrape.

Re-running a fixed-horizon test while data accrue inflates its false alarms (Netflix measured
about 70 % of A/A experiments "failing" under continuous Mann-Whitney). These monitors are test
martingales instead (Lindon, Sanden, Shirikian, KDD 2022; Lindon & Malek, NeurIPS 2022): a
nonnegative process ``M_t`` with ``E[M_t] <= 1`` under the null, so by Ville's inequality
``P(sup_t M_t >= 1/alpha) <= alpha`` -- however often it is looked at. The p-value
``min(1, 1 / max_{s<=t} M_s)`` never increases, and a rejection is final.

Both monitors condition on what carries no information about the effect, which removes every
nuisance parameter (the traffic split, the overall error rate, the baseline's latency shape):

* ``RateMonitor`` -- canary and baseline events are Poisson processes with intensities
  ``theta * lambda`` and ``lambda`` per unit of exposure. Given the ``n`` events of one interval,
  the canary's share is Binomial(n, theta*r / (theta*r + 1)) with ``r`` the interval's exposure
  ratio canary/baseline. ``M_t`` mixes the likelihood ratio (theta vs 1) over a discrete prior on
  ``log theta``: a Beta-binomial when ``r`` is constant, exact for any exposure path. (When the
  events are errors among the requests counted as exposure, the exact law given ``n`` is
  hypergeometric, which is smaller in convex order than the binomial, so ``M_t`` is then a
  supermartingale: still valid, slightly conservative.)
* ``HistogramMonitor`` -- given an interval's events per bucket (both sides pooled) and the
  canary's total, which of them are the canary's is multivariate hypergeometric under "same
  distribution", whatever the traffic split or the latency shape. The alternative tilts it
  (Fisher's noncentral hypergeometric): an event one bucket higher is ``exp(beta)`` times as
  likely to be the canary's. ``M_t`` mixes over ``beta`` on a grid.

The prior is one-sided for ``increase``/``decrease`` (mass only on a worse canary) and split
half-half for ``either``. Because the mixture is over a discrete grid, the martingale is exact
(no integration error). The confidence sequence of the effect is the running intersection of
``{effect: L_t(effect) > alpha * mixture_t}`` over the grid, widened to the neighbouring grid
points. Counter resets are the caller's to handle (as Prometheus's ``increase()`` does): a count
that goes down here is an error, never silently absorbed.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, gammaln, log_expit

from suite.errors import ConfigError
from tasks.canary.config import Direction

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Counts = Sequence[float] | np.ndarray[Any, Any]  # cumulative bucket counts, in bounds' order

#: log rate-ratio grid: ratios 1/1000 .. 1000 (an error rate going 0 -> 5 % is "ratio 1000")
RATE_GRID = np.linspace(-math.log(1000.0), math.log(1000.0), 277)
#: tilt per bucket step: odds up to e^5 = 148 that an event one bucket higher is the canary's
TILT_GRID = np.linspace(-5.0, 5.0, 101)
_INTEGRAL = 1e-6


class InvalidCounts(ConfigError):
    """Counts that cannot come from counters: negative, decreasing, fractional, mismatched."""


@dataclass(frozen=True)
class SequentialResult:
    """One look at a sequential test: everything seen so far and what it says."""

    p_value: float  # anytime-valid, never increases from one update to the next
    reject: bool  # p_value <= alpha
    alpha: float
    statistic: float  # log M_t now (log e-value); p_value = min(1, exp(-max_statistic))
    max_statistic: float
    updates: int
    effect: str  # "rate_ratio" | "bucket_odds_ratio"
    estimate: float  # maximum-likelihood effect on the grid (nan before any information)
    confidence_sequence: tuple[float, float]  # of the effect, (1 - alpha), anytime-valid
    counts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | str:
            return x if math.isfinite(x) else str(x)

        return {
            "p_value": self.p_value, "reject": self.reject, "alpha": self.alpha,
            "statistic": num(self.statistic), "max_statistic": num(self.max_statistic),
            "updates": self.updates, "effect": self.effect, "estimate": num(self.estimate),
            "confidence_sequence": [num(x) for x in self.confidence_sequence],
            "counts": self.counts, "reason": self.reason,
        }


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ConfigError(f"sequential alpha is {alpha!r} (expected a probability, 0 < alpha < 1)")
    return float(alpha)


def _direction(direction: str) -> Direction:
    try:
        return Direction(direction)
    except ValueError as exc:
        known = ", ".join(repr(d.value) for d in Direction)
        problem = f"sequential direction is {direction!r} (expected one of {known})"
        raise ConfigError(problem) from exc


def _log_prior(grid: FloatArray, direction: Direction) -> FloatArray:
    """Uniform over the grid points on the worse side (both sides, half each, for ``either``)."""
    worse = {Direction.INCREASE: grid > 0, Direction.DECREASE: grid < 0}.get(direction, grid != 0)
    if direction == Direction.EITHER:
        weights = np.where(grid > 0, 0.5 / np.count_nonzero(grid > 0), 0.0)
        weights += np.where(grid < 0, 0.5 / np.count_nonzero(grid < 0), 0.0)
    else:
        weights = np.where(worse, 1.0 / np.count_nonzero(worse), 0.0)
    with np.errstate(divide="ignore"):
        return np.log(weights)


def _count(name: str, value: float, integral: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidCounts(f"{name} is {value!r} (expected a number)")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidCounts(f"{name} is {value!r} (expected a finite count >= 0)")
    if integral and abs(value - round(value)) > _INTEGRAL * max(1.0, value):
        raise InvalidCounts(
            f"{name} is {value!r} (expected a whole number: pass the raw counter, "
            "not increase() or rate(), which extrapolate)"
        )
    return float(round(value)) if integral else value


def _not_decreasing(name: str, before: float, now: float) -> None:
    if now < before:
        raise InvalidCounts(
            f"{name} went down from {before:g} to {now:g} (expected cumulative counts; a counter "
            "reset must be handled by the caller, e.g. by adding the new value to the last one "
            "as Prometheus's increase() does)"
        )


class _Mixture:
    """Running log-likelihood ratios over a grid of effects, their mixture and its maximum."""

    def __init__(self, grid: FloatArray, direction: Direction, alpha: float) -> None:
        self.grid = grid
        self.alpha = alpha
        self.log_prior = _log_prior(grid, direction)
        self.loglik = np.zeros_like(grid)  # log L_t(effect) - log L_t(no effect)
        self.statistic = 0.0
        self.max_statistic = 0.0
        self.inside = np.ones(grid.shape, dtype=bool)  # running confidence sequence
        self.informed = False
        self.updates = 0

    def add(self, loglik: FloatArray | None) -> None:
        self.updates += 1
        if loglik is None:
            return
        self.informed = True
        self.loglik = self.loglik + loglik
        terms = self.log_prior + self.loglik
        peak = float(terms.max())
        self.statistic = peak + math.log(float(np.exp(terms - peak).sum()))
        self.max_statistic = max(self.max_statistic, self.statistic)
        kept = self.loglik > self.statistic + math.log(self.alpha)
        if np.any(kept & self.inside):  # an empty intersection keeps the last one (prob <= alpha)
            self.inside &= kept

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self.max_statistic))

    def estimate(self) -> float:
        return float(self.grid[int(np.argmax(self.loglik))]) if self.informed else math.nan

    def bounds(self) -> tuple[float, float]:
        """Log-scale ends, widened to the grid points just outside (open ends are infinite)."""
        where = np.flatnonzero(self.inside)
        low = self.grid[where[0] - 1] if where[0] > 0 else -math.inf
        high = self.grid[where[-1] + 1] if where[-1] < self.grid.size - 1 else math.inf
        return float(low), float(high)


def _reason(kind: str, mixture: _Mixture, what: str) -> str:
    p = mixture.p_value
    if mixture.p_value <= mixture.alpha:
        return f"{kind}: {what}, p {p:.3g} <= alpha {mixture.alpha:g} (anytime-valid)"
    return f"{kind}: {what}, p {p:.3g} > alpha {mixture.alpha:g}: no evidence yet"


class RateMonitor:
    """Sequential test of equal event rates per unit of exposure (canary vs baseline)."""

    def __init__(self, alpha: float = 0.01, direction: str = "increase") -> None:
        self.alpha = _check_alpha(alpha)
        self.direction = _direction(direction)
        self._mixture = _Mixture(RATE_GRID, self.direction, self.alpha)
        self._last = (0.0, 0.0, 0.0, 0.0)

    def update(
        self,
        canary_events: float,
        canary_exposure: float,
        baseline_events: float,
        baseline_exposure: float,
    ) -> SequentialResult:
        """Take the cumulative counts so far (e.g. 5xx responses and requests of each side)."""
        names = ("canary_events", "canary_exposure", "baseline_events", "baseline_exposure")
        raw = (canary_events, canary_exposure, baseline_events, baseline_exposure)
        c_x, c_e, b_x, b_e = (
            _count(n, v, integral=n.endswith("events")) for n, v in zip(names, raw, strict=True)
        )
        now = (c_x, c_e, b_x, b_e)
        for name, before, value in zip(names, self._last, now, strict=True):
            _not_decreasing(name, before, value)
        dx_c, de_c, dx_b, de_b = (b - a for a, b in zip(self._last, now, strict=True))
        for side, events, exposure in (("canary", dx_c, de_c), ("baseline", dx_b, de_b)):
            if events > 0 and exposure == 0:
                raise InvalidCounts(
                    f"{side} counted {events:g} events with no new exposure (expected the "
                    "exposure counter, e.g. requests, to grow with its events)"
                )
        self._last = now
        self._mixture.add(self._loglik(dx_c, de_c, dx_b, de_b))
        return self.result()

    def _loglik(self, dx_c: float, de_c: float, dx_b: float, de_b: float) -> FloatArray | None:
        if dx_c + dx_b == 0 or de_c == 0 or de_b == 0:
            return None  # no events, or one side had no exposure: no information on the ratio
        log_r = math.log(de_c / de_b)
        n = dx_c + dx_b
        grid = self._mixture.grid
        shares = np.logaddexp(grid + log_r, 0.0) - np.logaddexp(log_r, 0.0)
        loglik: FloatArray = dx_c * grid - n * shares
        return loglik

    def result(self) -> SequentialResult:
        m = self._mixture
        x_c, e_c, x_b, e_b = self._last
        low, high = m.bounds()
        ratio = _observed_ratio(x_c, e_c, x_b, e_b)
        what = (f"canary {x_c:g}/{e_c:g} vs baseline {x_b:g}/{e_b:g}, "
                f"rate ratio {ratio:.3g} in [{math.exp(low):.3g}, {math.exp(high):.3g}]")
        return SequentialResult(
            p_value=m.p_value, reject=m.p_value <= self.alpha, alpha=self.alpha,
            statistic=m.statistic, max_statistic=m.max_statistic, updates=m.updates,
            effect="rate_ratio", estimate=math.exp(m.estimate()) if m.informed else math.nan,
            confidence_sequence=(math.exp(low), math.exp(high)),
            counts={"canary_events": x_c, "canary_exposure": e_c,
                    "baseline_events": x_b, "baseline_exposure": e_b},
            reason=_reason("rate", m, what),
        )


def _observed_ratio(x_c: float, e_c: float, x_b: float, e_b: float) -> float:
    if not (e_c and e_b) or not (x_c or x_b):
        return math.nan
    return math.inf if x_b == 0 else (x_c / e_c) / (x_b / e_b)


def _check_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(b) for b in bounds)
    if len(values) < 2 or not math.isinf(values[-1]) or values[-1] < 0:
        raise ConfigError(
            f"histogram bounds {list(bounds)!r} (expected the 'le' upper bounds in increasing "
            "order with +Inf last, at least one finite bound before it)"
        )
    if any(math.isnan(v) for v in values) or any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"histogram bounds {list(bounds)!r} are not strictly increasing")
    return values


#: Newton steps of at most 4 each: enough to reach the saddle from the start below even at
#: the grid's ends (beta = -5 or 5 over 20 buckets puts it up to ~95 away)
SADDLE_STEPS = 40


def _saddle(n: FloatArray, scores: FloatArray, m: float) -> FloatArray:
    """Per row of ``scores`` (beta * bucket index), about the shift t with
    sum_k n_k expit(s_k + t) = m: the tilted binomials then have mean m, so the convolution in
    ``tilt_loglik`` works on probabilities near their mode (no overflow, and the coefficient it
    is after does not underflow). Any t gives the same exact value; t only conditions it."""
    total = float(n.sum())
    shift: FloatArray = math.log(m / (total - m)) - (scores @ n) / total
    for _ in range(SADDLE_STEPS):
        share = expit(scores + shift[:, None])
        slope = np.maximum((n * share * (1 - share)).sum(axis=1), 1e-12)
        step = np.clip(((n * share).sum(axis=1) - m) / slope, -4.0, 4.0)
        shift = shift - step
        if float(np.abs(step).max()) < 1e-6:
            break
    return shift


def tilt_loglik(x: FloatArray, y: FloatArray, grid: FloatArray) -> FloatArray:
    """log P_beta(x) / P_0(x) for every beta of ``grid``: the canary's per-bucket counts ``x``
    given the pooled per-bucket counts ``x + y`` and the canary total (Fisher's noncentral
    multivariate hypergeometric with odds exp(beta * bucket index) against the central one).

    The normaliser is the coefficient of z^m in prod_k (1 + w_k z)^n_k. With z = e^t u it is
    e^(-t m) prod_k (1 + w_k e^t)^n_k P(S = m), S a sum of Binomial(n_k, expit(log w_k + t)),
    and P(S = m) is a truncated convolution of binomial probabilities."""
    n = x + y
    total, m = float(n.sum()), float(x.sum())
    if m == 0 or m == total or np.count_nonzero(n) < 2:
        return np.zeros_like(grid)  # one allocation only, or all in one bucket: no information
    if m > total / 2:  # the baseline's allocation with the tilt reversed: same ratio, fewer terms
        return tilt_loglik(y, x, -grid)
    direct = _tilt_loglik_direct(x, n, grid, total, m)
    if direct is not None:
        return direct
    return _tilt_loglik_saddle(x, n, grid, total, m)


#: the direct computation's limit on the canary's observations per interval (its matrices grow
#: with the square); above it, or where it would under- or overflow, the saddle-point one runs
DIRECT_MAX = 48
_TINY = 1e-280


@functools.cache
def _powers(m: int) -> tuple[FloatArray, np.ndarray[Any, np.dtype[np.intp]]]:
    """Powers 0..m and one extra column (a zero coefficient: its log binomial is set to
    -inf), and the Toeplitz index s - t, pointing at that zero above the diagonal."""
    j = np.arange(m + 2, dtype=float)
    j[-1] = 0.0  # the zero's "power": finite, its log binomial is set to -inf
    lag = np.subtract.outer(np.arange(m + 1), np.arange(m + 1))
    return j, np.where(lag >= 0, lag, m + 1)


def _tilt_loglik_direct(x: FloatArray, n: FloatArray, grid: FloatArray, total: float,
                        m: float) -> FloatArray | None:
    """The same ratio as :func:`_tilt_loglik_saddle`, by the plain truncated polynomial product,
    batched over the grid and the buckets (a few array operations in all: the sequential
    monitors' hot path at every scrape). Each weight is scaled by that of the bucket most
    favoured under its beta (the highest used one for beta > 0, the lowest for beta < 0), so
    every term is at most a binomial coefficient: no overflow. None when ``m`` is too large or
    the coefficient could underflow; the caller then takes the saddle-point path."""
    m_int = int(m)
    if m_int > DIRECT_MAX or total > 1e7:
        return None
    used = np.flatnonzero(n > 0)
    index = used.astype(float)
    counts = n[used]
    anchor = np.where(grid >= 0, index[-1], index[0])  # per beta: the heaviest bucket's index
    j, lag = _powers(m_int)
    rest = counts[:, None] - j[None, :]
    # log C(n_k, j), -inf where j > n_k (that power is absent); the extra last column is the
    # zero that the Toeplitz matrices below take above their diagonal
    log_binom = np.where(rest >= 0, gammaln(counts + 1)[:, None] - gammaln(j + 1)[None, :]
                         - gammaln(np.maximum(rest, 0.0) + 1), -np.inf)
    log_binom[:, -1] = -np.inf
    # coefficients of (1 + w_k z)^n_k, scaled weights w_k = exp(beta (k - anchor)) <= 1:
    # (grid, bucket, power j)
    offsets = (index[None, :] - anchor[:, None]) * grid[:, None]
    coef = np.exp(log_binom[None, :, :] + offsets[:, :, None] * j[None, None, :])
    # Toeplitz matrices of the truncated product: T[b, k, s, t] = coef[b, k, s - t] (s >= t)
    toeplitz = coef[:, :, lag]
    dist = toeplitz[:, 0, :, 0]  # the first bucket's coefficients, applied to 1
    for column in range(1, counts.size):
        dist = np.matmul(toeplitz[:, column], dist[:, :, None])[:, :, 0]
    top = dist[:, m_int]
    if not np.all(np.isfinite(top)) or float(top.min()) < _TINY:
        return None
    log_coefficient = np.log(top) + grid * anchor * m
    log_central = gammaln(total + 1) - gammaln(m + 1) - gammaln(total - m + 1)
    loglik: FloatArray = grid * float(np.arange(n.size) @ x) + log_central - log_coefficient
    return loglik


def _tilt_loglik_saddle(x: FloatArray, n: FloatArray, grid: FloatArray, total: float,
                        m: float) -> FloatArray:
    """The ratio for any counts: the binomial convolution after a saddle-point shift."""
    used = n > 0
    index = np.flatnonzero(used).astype(float)
    counts = n[used]
    scores = grid[:, None] * index[None, :]
    shift = _saddle(counts, scores, m)
    m_int = int(m)
    dist = np.zeros((grid.size, m_int + 1))
    dist[:, 0] = 1.0
    for column, count in enumerate(counts):
        top = int(min(count, m_int))
        j = np.arange(top + 1, dtype=float)
        logit = (scores[:, column] + shift)[:, None]
        log_row = (gammaln(count + 1) - gammaln(j + 1) - gammaln(count - j + 1))[None, :] + (
            j * log_expit(logit) + (count - j) * log_expit(-logit)
        )
        row = np.exp(log_row)  # Binomial(count, expit(logit)) probabilities
        grown = np.zeros_like(dist)
        for step in range(top + 1):
            grown[:, step:] += row[:, step, None] * dist[:, : m_int + 1 - step]
        dist = grown
    log_norm = (counts * np.logaddexp(0.0, scores + shift[:, None])).sum(axis=1) - shift * m
    log_coefficient = log_norm + np.log(dist[:, m_int])
    log_central = gammaln(total + 1) - gammaln(m + 1) - gammaln(total - m + 1)
    loglik: FloatArray = grid * float(np.arange(n.size) @ x) + log_central - log_coefficient
    return loglik


def _per_bucket(cumulative: FloatArray) -> FloatArray:
    """Counts per bucket from counts cumulative over ``le`` (np.diff with prepend=0, cheaper)."""
    out = cumulative.copy()
    out[1:] -= cumulative[:-1]
    return out


class HistogramMonitor:
    """Sequential test that the canary's latency distribution is worse than the baseline's,
    from Prometheus histogram buckets (``le`` upper bounds, cumulative, +Inf last)."""

    def __init__(
        self, bounds: Sequence[float], alpha: float = 0.01, direction: str = "increase"
    ) -> None:
        self.bounds = _check_bounds(bounds)
        self.alpha = _check_alpha(alpha)
        self.direction = _direction(direction)
        self._mixture = _Mixture(TILT_GRID, self.direction, self.alpha)
        self._labels = [str(b) if math.isinf(b) else b for b in self.bounds]
        zero = np.zeros(len(self.bounds))
        self._last = (zero, zero)

    def _buckets(self, side: str, buckets: Counts) -> FloatArray:
        if len(buckets) != len(self.bounds):
            raise InvalidCounts(
                f"{side} has {len(buckets)} buckets, the monitor {len(self.bounds)} "
                f"(bounds {list(self.bounds)}): expected the same 'le' buckets on both sides"
            )
        try:
            counts = np.asarray(buckets, dtype=float)
            rounded = np.round(counts)
            # one test for all: NaN and inf fail it, so do negative and fractional counts
            fine = bool(((counts >= 0) & (np.abs(counts - rounded)
                                          <= _INTEGRAL * np.maximum(1.0, counts))).all())
        except (TypeError, ValueError):
            fine = False
        if not fine:  # find the culprit for the message
            for bound, value in zip(self.bounds, buckets, strict=True):
                _count(f"{side} bucket le={bound:g}", value, integral=True)
        counts = rounded
        if (counts[1:] < counts[:-1]).any():
            drops = np.flatnonzero(counts[1:] < counts[:-1])
            i = int(drops[0])
            raise InvalidCounts(
                f"{side} bucket le={self.bounds[i + 1]:g} counts {counts[i + 1]:g} < "
                f"{counts[i]:g} at le={self.bounds[i]:g} (expected counts cumulative over "
                "buckets, as Prometheus exposes them)"
            )
        return counts

    def update(
        self, canary_buckets: Counts, baseline_buckets: Counts
    ) -> SequentialResult:
        """Take each side's cumulative bucket counts so far, in the order of ``bounds``."""
        canary = self._buckets("canary", canary_buckets)
        baseline = self._buckets("baseline", baseline_buckets)
        sides = (("canary", self._last[0], canary), ("baseline", self._last[1], baseline))
        for side, before, now in sides:
            if (now < before).any():
                i = int(np.flatnonzero(now < before)[0])
                _not_decreasing(f"{side} bucket le={self.bounds[i]:g}", before[i], now[i])
        x = _per_bucket(canary - self._last[0])
        y = _per_bucket(baseline - self._last[1])
        if (x < 0).any() or (y < 0).any():
            raise InvalidCounts(
                "a bucket gained fewer observations than a lower one since the last update "
                f"(canary {x.tolist()}, baseline {y.tolist()}): expected counts from one histogram"
            )
        self._last = (canary, baseline)
        informed = x.sum() > 0 and y.sum() > 0 and np.count_nonzero(x + y) > 1
        self._mixture.add(tilt_loglik(x, y, TILT_GRID) if informed else None)
        return self.result()

    def result(self) -> SequentialResult:
        m = self._mixture
        canary, baseline = (_per_bucket(side) for side in self._last)
        low, high = m.bounds()
        estimate = math.exp(m.estimate()) if m.informed else math.nan
        what = (f"canary {canary.sum():g} vs baseline {baseline.sum():g} observations, odds "
                f"{estimate:.3g} per bucket up in [{math.exp(low):.3g}, {math.exp(high):.3g}]")
        c_list, b_list = canary.tolist(), baseline.tolist()
        c_total, b_total = float(sum(c_list)), float(sum(b_list))
        shares = [
            {"le": le, "canary": c / c_total if c_total else math.nan,
             "baseline": b / b_total if b_total else math.nan}
            for le, c, b in zip(self._labels, c_list, b_list, strict=True)
        ]
        return SequentialResult(
            p_value=m.p_value, reject=m.p_value <= self.alpha, alpha=self.alpha,
            statistic=m.statistic, max_statistic=m.max_statistic, updates=m.updates,
            effect="bucket_odds_ratio", estimate=estimate,
            confidence_sequence=(math.exp(low), math.exp(high)),
            counts={"canary": c_list, "baseline": b_list, "shares": shares},
            reason=_reason("histogram", m, what),
        )
