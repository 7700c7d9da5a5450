"""Classify one metric: Kayenta's NetflixACAJudge metric classification, made deterministic.

Order of decisions (each leaves its reason in the result):

1. values that are not numbers or are infinite -> ``Error``;
2. NaNs removed (or read as 0), outliers optionally removed;
3. an empty side -> ``Nodata`` (``NodataFailMetric`` when the metric must have data and is not
   critical; ``Pass`` when NaNs are read as zeros, as in Kayenta);
4. identical samples, or one single value on both sides -> ``Pass`` (not when an exposure is
   given: the same counts over different traffic are different rates);
5. the location comparison: the rank-sum interval of the shift (or, for sparse counts, the exact
   interval of the rate ratio on a log scale) against a tolerance band of ± ``tolerance`` times the
   estimate: entirely above -> increase, entirely below -> decrease; kept only in the configured
   direction and when the effect size reaches ``allowed_increase`` / ``allowed_decrease`` (an
   effect size that cannot be computed, e.g. a zero baseline mean, is not checked);
   two constant samples need no noise: the interval is the difference itself;
6. the spread test, when the location passed: skipped (and said so) when the canary's spread is
   below ``spread_floor`` (metric units; left out: ``(allowed_increase - 1) x`` the baseline mean
   for the mean ratio, else none), so near-constant series cannot fire it over a few
   microseconds; otherwise canary spread significantly larger (one-sided, at a quarter of
   ``1 - confidence``, so that the second test keeps A/A false alarms under 1 %, see
   bench/RESULTS.md) and at least ``allowed_spread_increase`` times the baseline's -> ``High``;
7. a critical metric whose ``High``/``Low`` reaches ``critical_increase`` / ``critical_decrease``
   is marked critical (the scorer then fails the whole canary).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from suite.errors import ConfigError
from tasks.canary.config import (
    Direction,
    EffectSizeMeasure,
    MetricConfig,
    NanStrategy,
    OutlierStrategy,
    StatTest,
)
from tasks.canary.effects import SpreadTest, cles, mean_ratio, spread_test
from tasks.canary.pairwise import FloatArray
from tasks.canary.preprocess import Cleaned, clean
from tasks.canary.ranksum import rank_sum_sorted
from tasks.canary.rates import is_count_sample, is_sparse_counts, rate_test
from tasks.canary.result import Classification, Location, MetricResult, SampleStats

#: the spread test runs at this share of the location test's significance level
SPREAD_ALPHA_SHARE = 0.25
_INCREASING = (Direction.INCREASE, Direction.EITHER)
_DECREASING = (Direction.DECREASE, Direction.EITHER)


def _raw(values: Any, side: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the {side} values are not all numbers ({exc})") from exc
    infinite = int(np.count_nonzero(np.isinf(array)))
    if infinite:
        raise ConfigError(f"the {side} has {infinite} infinite value(s) (expected finite numbers)")
    return array


def _nodata(config: MetricConfig, name: str, c: Cleaned, e: Cleaned) -> MetricResult:
    empty = [side for side, s in (("baseline", c), ("canary", e)) if s.values.size == 0]
    reason = f"no data for the {' and the '.join(empty)}"
    dropped = c.nan_count + e.nan_count
    if dropped:
        reason += f" ({dropped} NaN removed)"
    if config.nan_strategy == NanStrategy.REPLACE:
        label, critical = Classification.PASS, False
        reason += "; NaN and missing values read as zero, so nothing happened on either side"
    elif config.must_have_data and not config.critical:
        label, critical = Classification.NODATA_FAIL_METRIC, False
        reason += "; the metric must have data"
    else:
        label, critical = Classification.NODATA, config.critical
    return MetricResult.empty(name, label, critical, reason, config, c, e)


def _location(
    config: MetricConfig, c: FloatArray, e: FloatArray, exposure: tuple[float, float] | None
) -> Location:
    use_rate = (
        exposure is not None
        or config.test == StatTest.RATE
        or (config.test == StatTest.AUTO and is_sparse_counts(c, e))
    )
    if not use_rate:
        rs = rank_sum_sorted(e, c, config.confidence)
        iv = rs.interval
        band = config.tolerance * abs(iv.estimate)
        common = rs.u_statistic / (c.size * e.size)
        above, below = iv.low > band, iv.high < -band
        if _beside_zero(iv.low, iv.high, iv.estimate, rs.p_value, config.confidence):
            above, below = rs.z > 0 and iv.low == 0, rs.z < 0 and iv.high == 0
            return Location("rank", iv, rs.p_value, above, below, band, common,
                            open_at_zero=above or below)
        return Location("rank", iv, rs.p_value, above, below, band, common)
    if exposure is None and not (is_count_sample(c) and is_count_sample(e)):
        raise ConfigError("the rate test needs non-negative whole counts on both sides")
    if exposure is not None and (c.min() < 0 or e.min() < 0):
        raise ConfigError("event counts are negative (expected counts >= 0 with an exposure)")
    rt = rate_test(c, e, config.confidence, exposure)
    iv = rt.interval
    with np.errstate(divide="ignore"):
        low, high, est = (float(np.log(v)) for v in (iv.low, iv.high, iv.estimate))
    finite_end = low if math.isfinite(low) else high
    centre = est if math.isfinite(est) else finite_end
    band = config.tolerance * abs(centre) if math.isfinite(centre) else 0.0
    return Location("rate", iv, rt.p_value, low > band, high < -band, band)


def _beside_zero(low: float, high: float, estimate: float, p_value: float,
                 confidence: float) -> bool:
    """A mostly-zero metric (e.g. errors per interval): the pairwise differences pile up at 0,
    so the interval's end and the estimate are exactly 0 and the band is 0, while the test at a
    shift of 0 rejects. The interval is then open at 0 (0 itself is rejected), so it lies
    beside 0: Kayenta's root search (R's wilcox.test, tolerance 1e-4) returns ends a hair off the
    jump at 0 on that side, and classifies High or Low (its ClassifierSuite's large-input case)."""
    return estimate == 0 and (low == 0 or high == 0) and p_value <= 1.0 - confidence


def _effect(
    config: MetricConfig, c: FloatArray, e: FloatArray, loc: Location
) -> tuple[float, float, float]:
    """(chosen effect size, mean ratio, CLES). For rates the ratio is the rate ratio (the mean
    ratio when each sample is one unit of exposure); NaN when the baseline had no events."""
    common = loc.cles if not math.isnan(loc.cles) else cles(c, e)
    if loc.test == "rate":
        ratio = loc.interval.estimate if float(c.sum()) > 0 else math.nan
    else:
        ratio = mean_ratio(c, e)
    chosen = common if config.effect_size_measure == EffectSizeMeasure.CLES else ratio
    return chosen, ratio, common


def _decide(config: MetricConfig, loc: Location, effect: float) -> tuple[Classification, str]:
    measure = config.effect_size_measure
    unchecked = math.isnan(effect)
    shown = f"{measure} {effect:.4g}"
    if loc.above:
        if config.direction not in _INCREASING:
            return Classification.PASS, f"{loc.describe('above')}, but only decreases count"
        if unchecked or effect >= config.allowed_increase:
            gate = "not checked" if unchecked else f">= allowed_increase {config.allowed_increase}"
            return Classification.HIGH, f"{loc.describe('above')} and {shown} {gate}"
        return Classification.PASS, (
            f"{loc.describe('above')}, but {shown} < allowed_increase {config.allowed_increase}"
        )
    if loc.below:
        if config.direction not in _DECREASING:
            return Classification.PASS, f"{loc.describe('below')}, but only increases count"
        if unchecked or effect <= config.allowed_decrease:
            gate = "not checked" if unchecked else f"<= allowed_decrease {config.allowed_decrease}"
            return Classification.LOW, f"{loc.describe('below')} and {shown} {gate}"
        return Classification.PASS, (
            f"{loc.describe('below')}, but {shown} > allowed_decrease {config.allowed_decrease}"
        )
    return Classification.PASS, loc.describe("within")


def _critical(config: MetricConfig, label: Classification, effect: float, spread: bool) -> bool:
    if not config.critical or label not in (Classification.HIGH, Classification.LOW):
        return False
    if spread or math.isnan(effect):
        return True
    if label == Classification.HIGH:
        return effect >= config.critical_increase
    return effect <= config.critical_decrease


def _spread_floor(config: MetricConfig, c: FloatArray) -> tuple[float, str]:
    """The canary spread the spread test needs before it counts, and how to say where it is from."""
    if config.spread_floor is not None:
        return config.spread_floor, f"spread_floor {config.spread_floor:.3g}"
    measure, allowed = config.effect_size_measure, config.allowed_increase
    if measure != EffectSizeMeasure.MEAN_RATIO or allowed <= 1.0:
        return 0.0, "no spread_floor"
    mean = abs(float(np.mean(c)))
    floor = (allowed - 1.0) * mean
    return floor, (
        f"spread_floor {floor:.3g} (default: (allowed_increase {allowed:g} - 1) x baseline mean "
        f"{mean:.3g})"
    )


def _spread(
    config: MetricConfig, c: FloatArray, e: FloatArray, reason: str
) -> tuple[SpreadTest, float, bool, str]:
    """(test, floor applied, whether it fired, reason) for a metric whose location passed."""
    spread = spread_test(c, e)
    floor, floor_text = _spread_floor(config, c)
    alpha = SPREAD_ALPHA_SHARE * (1.0 - config.confidence)
    measured = f"{spread.ratio:.3g}x the baseline's, one-sided p={spread.p_value:.3g}"
    canary = f"canary spread {spread.experiment_spread:.3g}"
    if spread.experiment_spread < floor:
        skipped = f"{reason}; spread test skipped: {canary} ({measured}) < {floor_text}"
        return spread, floor, False, skipped
    if spread.p_value < alpha and spread.ratio >= config.allowed_spread_increase:
        above = f", {canary} >= {floor_text}" if floor else ""
        fired = (
            f"canary spread is {spread.ratio:.3g}x the baseline's (>= allowed_spread_increase "
            f"{config.allowed_spread_increase}, one-sided p={spread.p_value:.3g} < {alpha:.3g}"
            f"{above}) while {reason}"
        )
        return spread, floor, True, fired
    return spread, floor, False, reason


def _compare(
    config: MetricConfig,
    name: str,
    c: Cleaned,
    e: Cleaned,
    exposure: tuple[float, float] | None,
) -> MetricResult:
    cv, ev = c.values, e.values  # sorted by classify_metric
    loc = _location(config, cv, ev, exposure)
    effect, ratio, common = _effect(config, cv, ev, loc)
    label, reason = _decide(config, loc, effect)
    located = label  # Kayenta's classification when the location test is the rank-sum
    spread, floor, spread_flag = None, math.nan, False
    if loc.test == "rank" and config.spread_test:
        if label == Classification.PASS:
            spread, floor, spread_flag, reason = _spread(config, cv, ev, reason)
            label = Classification.HIGH if spread_flag else label
        else:
            spread = spread_test(cv, ev)  # recorded; the location already decided
    critical = _critical(config, label, effect, spread_flag)
    if critical:
        reason += "; critical metric"
    kayenta = None  # only when a check beyond Kayenta took part
    if loc.test == "rate":
        kayenta = _kayenta(config, cv, ev)
    elif spread is not None:
        kayenta = located
    return MetricResult(
        name=name,
        classification=label,
        critical=critical,
        reason=reason,
        test=loc.test,
        interval=loc.interval,
        p_value=loc.p_value,
        tolerance_band=loc.band,
        effect_size=effect,
        effect_size_measure=str(config.effect_size_measure),
        mean_ratio=ratio,
        cles=common,
        spread_ratio=spread.ratio if spread else math.nan,
        spread_p_value=spread.p_value if spread else math.nan,
        spread_baseline=spread.control_spread if spread else math.nan,
        spread_canary=spread.experiment_spread if spread else math.nan,
        spread_floor=floor,
        control=SampleStats.of(cv, c.nan_count, c.outliers_removed),
        experiment=SampleStats.of(ev, e.nan_count, e.outliers_removed),
        muted=config.muted,
        kayenta_classification=kayenta,
    )


def _kayenta(config: MetricConfig, c: FloatArray, e: FloatArray) -> Classification:
    """Kayenta's own classification of samples the rate test judged: the rank-sum location on
    the raw per-interval values, the effect size, the direction (no spread test)."""
    rs = rank_sum_sorted(e, c, config.confidence)
    iv, band = rs.interval, config.tolerance * abs(rs.interval.estimate)
    loc = Location("rank", iv, rs.p_value, iv.low > band, iv.high < -band, band,
                   rs.u_statistic / (c.size * e.size))
    effect = _effect(config, c, e, loc)[0]
    return _decide(config, loc, effect)[0]


def _same(c: FloatArray, e: FloatArray) -> str | None:
    """Why nothing needs testing (Kayenta's shortcuts), or None. Samples are sorted."""
    if np.array_equal(c, e):
        return "the canary and baseline data are identical"
    if c[0] == c[-1] == e[0] == e[-1]:
        return f"every value on both sides is {c[0]:.6g}"
    return None


def classify_metric(
    control: Any,
    experiment: Any,
    config: MetricConfig | None = None,
    *,
    name: str = "metric",
    exposure: tuple[float, float] | None = None,
) -> MetricResult:
    """Compare canary (experiment) against baseline (control) for one metric.

    With ``exposure`` = (baseline, canary) totals (e.g. requests served), the samples are event
    counts (e.g. errors) and the exact rate test compares events per unit of exposure.
    """
    config = config or MetricConfig()
    try:
        nans, outliers = NanStrategy(config.nan_strategy), OutlierStrategy(config.outlier_strategy)
        c = clean(_raw(control, "baseline"), nans, outliers, config.outlier_factor)
        e = clean(_raw(experiment, "canary"), nans, outliers, config.outlier_factor)
        c, e = c.sorted(), e.sorted()  # every statistic below is order-free: sort once
        if c.values.size == 0 or e.values.size == 0:
            return _nodata(config, name, c, e)
        same = None if exposure is not None else _same(c.values, e.values)
        if same:
            return MetricResult.same(name, same, config, c, e)
        return _compare(config, name, c, e, exposure)
    except ConfigError as exc:
        return MetricResult.error(name, f"metric classification failed: {exc}", config)
