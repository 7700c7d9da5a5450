"""Per-metric analysis settings (Kayenta's ``analysisConfigurations.canary`` block, typed).

Thresholds of the effect size are on the scale of the chosen measure: the mean ratio
(canary mean / baseline mean; 1.0 means no change) or the common-language effect size CLES
(P(canary > baseline) + ½·P(tie); 0.5 means no change, range 0..1). As in Kayenta, a ``High``
needs the effect size at or above ``allowed_increase`` and a ``Low`` at or below
``allowed_decrease``; the defaults (1.0) are the mean-ratio neutral value, so with
``effect_size_measure="cles"`` set them explicitly (e.g. 0.6 and 0.4, or 0.5 and 0.5 to let the
interval alone decide).

``spread_floor`` (beyond Kayenta) is in the metric's own units: the spread test ignores a canary
whose spread (mean absolute deviation from its median, what the test measures) is below it, so a
near-constant series, e.g. a ``histogram_quantile`` between two buckets, cannot raise a "spread
blew up" alarm over microseconds. Left out, it follows the band ``allowed_increase`` already
draws on the mean: ``(allowed_increase - 1) x |baseline mean|`` for the mean ratio (a canary
spread below that cannot, with the same median, lift the canary mean past what the location test
tolerates, since mean - median <= mean absolute deviation), and no floor for CLES or
``allowed_increase: 1.0``. ``0`` turns the floor off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from suite.errors import ConfigError


class Direction(StrEnum):
    """Which way of moving is a failure."""

    EITHER = "either"
    INCREASE = "increase"
    DECREASE = "decrease"


class NanStrategy(StrEnum):
    REMOVE = "remove"  # NaN is missing data
    REPLACE = "replace"  # NaN means zero (counts: no event in that interval)


class OutlierStrategy(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"


class EffectSizeMeasure(StrEnum):
    MEAN_RATIO = "meanRatio"
    CLES = "cles"


class StatTest(StrEnum):
    """Which comparison decides the location: the rank-sum test (Kayenta's, the default), the
    exact rate test for sparse counts, or ``auto`` (rate test when both sides are non-negative
    integer counts that are mostly zero). An ``exposure`` always takes the rate test."""

    AUTO = "auto"
    RANK = "rank"
    RATE = "rate"


def _enum(kind: type[StrEnum], key: str, value: object) -> Any:
    if isinstance(value, str) and value in {member.value for member in kind}:
        return kind(value)
    allowed = ", ".join(repr(v.value) for v in kind)
    raise ConfigError(f"{key} is {value!r} (expected one of {allowed})")


def _number(key: str, value: object, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{key} is {value!r} (expected a number)")
    number = float(value)
    too_low = number <= low if open_low else number < low
    if too_low or number > high:
        bracket = "(" if open_low else "["
        raise ConfigError(f"{key} is {value!r} (expected a number in {bracket}{low}, {high}])")
    return number


def _floor(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number
    raise ConfigError(
        f"spread_floor is {value!r} (expected a finite number >= 0 in the metric's own units, "
        "e.g. 0.001 for 1 ms of a latency in seconds; 0 turns the floor off, leaving it out "
        "takes (allowed_increase - 1) x the baseline mean, spread_test: false turns the test off)"
    )


@dataclass(frozen=True, kw_only=True)
class MetricConfig:
    """How one metric is judged. Keyword arguments; invalid values raise ConfigError."""

    direction: Direction | str = Direction.EITHER
    nan_strategy: NanStrategy | str = NanStrategy.REMOVE
    outlier_strategy: OutlierStrategy | str = OutlierStrategy.KEEP
    outlier_factor: float = 3.0
    critical: bool = False
    must_have_data: bool = False
    effect_size_measure: EffectSizeMeasure | str = EffectSizeMeasure.MEAN_RATIO
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0
    tolerance: float = 0.25
    confidence: float = 0.98
    # beyond Kayenta: off by default, so that a default config classifies exactly as Kayenta
    # (its rank-sum test alone); each is turned on by a config or template and reported as its
    # own check beside Kayenta's classification (MetricResult.kayenta_classification)
    test: StatTest | str = StatTest.RANK
    spread_test: bool = False
    allowed_spread_increase: float = 1.5
    spread_floor: float | None = None  # metric units; None: (allowed_increase - 1) x baseline mean
    muted: bool = False

    def __post_init__(self) -> None:
        enums = {
            "direction": Direction,
            "nan_strategy": NanStrategy,
            "outlier_strategy": OutlierStrategy,
            "effect_size_measure": EffectSizeMeasure,
            "test": StatTest,
        }
        for key, kind in enums.items():
            object.__setattr__(self, key, _enum(kind, key, getattr(self, key)))
        for key in ("critical", "must_have_data", "spread_test", "muted"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} is {getattr(self, key)!r} (expected true or false)")
        top = 1.0 if self.effect_size_measure == EffectSizeMeasure.CLES else math.inf
        checks: dict[str, tuple[float, float, bool]] = {
            "outlier_factor": (0.0, math.inf, True),
            "allowed_increase": (0.0, top, False),
            "allowed_decrease": (0.0, top, False),
            "critical_increase": (0.0, top, False),
            "critical_decrease": (0.0, top, False),
            "tolerance": (0.0, math.inf, False),
            "confidence": (0.0, 0.999999, True),
            "allowed_spread_increase": (1.0, math.inf, False),
        }
        for key, (low, high, open_low) in checks.items():
            value = _number(key, getattr(self, key), low, high, open_low=open_low)
            object.__setattr__(self, key, value)
        if self.spread_floor is not None:
            object.__setattr__(self, "spread_floor", _floor(self.spread_floor))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
