"""What the judge says about one metric: the label, why, and every statistic behind it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.canary.ranksum import Interval

if TYPE_CHECKING:
    from tasks.canary.config import MetricConfig
    from tasks.canary.pairwise import FloatArray
    from tasks.canary.preprocess import Cleaned


class Classification(StrEnum):
    """Kayenta's metric labels (same spelling, so results read the same)."""

    PASS = "Pass"  # noqa: S105
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    ERROR = "Error"


@dataclass(frozen=True)
class SampleStats:
    count: int
    mean: float
    median: float
    min: float
    max: float
    std: float
    nan_count: int = 0
    outliers_removed: int = 0

    @classmethod
    def of(cls, values: FloatArray, nan_count: int = 0, outliers_removed: int = 0) -> SampleStats:
        if values.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan_count, outliers_removed)
        ordered = values if is_sorted(values) else np.sort(values)
        return cls(
            count=int(ordered.size),
            mean=float(ordered.mean()),
            median=median_of_sorted(ordered),
            min=float(ordered[0]),
            max=float(ordered[-1]),
            std=float(ordered.std(ddof=1)) if ordered.size > 1 else 0.0,
            nan_count=nan_count,
            outliers_removed=outliers_removed,
        )


def is_sorted(values: FloatArray) -> bool:
    return bool(values.size < 2 or (values[1:] >= values[:-1]).all())


def median_of_sorted(values: FloatArray) -> float:
    middle = values.size // 2
    if values.size % 2:
        return float(values[middle])
    return 0.5 * (float(values[middle - 1]) + float(values[middle]))


_NO_STATS = SampleStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Location:
    """Outcome of the location comparison (rank-sum shift or rate ratio)."""

    test: str  # "rank" | "rate"
    interval: Interval
    p_value: float
    above: bool  # interval entirely above the tolerance band
    below: bool
    band: float
    cles: float = math.nan  # from the rank-sum statistic when the rank test ran
    open_at_zero: bool = False  # interval and estimate at 0 with 0 itself rejected (ties at 0)

    def describe(self, where: str) -> str:
        iv = self.interval
        level = f"{iv.confidence * 100:.6g}"
        span = f"[{iv.low:.6g}, {iv.high:.6g}]"
        if self.open_at_zero:
            span = f"({iv.low:.6g}, {iv.high:.6g}]" if self.above else \
                f"[{iv.low:.6g}, {iv.high:.6g})"
            span += f" (0 itself rejected, p={self.p_value:.3g}: the shift is beside 0)"
        if self.test == "rank":
            what = f"the {level}% interval of the shift {span} (estimate {iv.estimate:.6g})"
            band = f"the tolerance band ±{self.band:.6g}"
        else:
            what = f"the {level}% interval of the rate ratio {span} (estimate {iv.estimate:.6g})"
            band = f"the tolerance band ±{self.band:.4g} on the log scale"
        if where == "within":
            return f"no clear difference: {what} is not clear of {band}"
        return f"{what} lies {where} {band}"


@dataclass(frozen=True)
class MetricResult:
    name: str
    classification: Classification
    critical: bool
    reason: str
    test: str = "none"  # "rank", "rate" or "none" (decided before any test)
    interval: Interval | None = None
    p_value: float = math.nan
    tolerance_band: float = math.nan
    effect_size: float = math.nan
    effect_size_measure: str = "meanRatio"
    mean_ratio: float = math.nan
    cles: float = math.nan
    spread_ratio: float = math.nan
    spread_p_value: float = math.nan
    spread_baseline: float = math.nan  # mean absolute deviation from the median, metric units
    spread_canary: float = math.nan
    spread_floor: float = math.nan  # below it the spread test is skipped; NaN: it did not decide
    control: SampleStats = _NO_STATS
    experiment: SampleStats = _NO_STATS
    muted: bool = False
    #: what Kayenta's rank-sum test alone says, when a check beyond Kayenta (the spread test or
    #: the rate test) took part in ``classification``; None when only Kayenta's method ran
    kayenta_classification: Classification | None = None

    @property
    def estimate(self) -> float:
        return self.interval.estimate if self.interval else math.nan

    @property
    def n_control(self) -> int:
        return self.control.count

    @property
    def n_experiment(self) -> int:
        return self.experiment.count

    @classmethod
    def empty(
        cls,
        name: str,
        label: Classification,
        critical: bool,
        reason: str,
        config: MetricConfig,
        c: Cleaned,
        e: Cleaned,
    ) -> MetricResult:
        return cls(
            name=name,
            classification=label,
            critical=critical,
            reason=reason,
            effect_size_measure=str(config.effect_size_measure),
            control=SampleStats.of(c.values, c.nan_count, c.outliers_removed),
            experiment=SampleStats.of(e.values, e.nan_count, e.outliers_removed),
            muted=config.muted,
        )

    @classmethod
    def same(
        cls, name: str, reason: str, config: MetricConfig, c: Cleaned, e: Cleaned
    ) -> MetricResult:
        result = cls.empty(name, Classification.PASS, False, reason, config, c, e)
        neutral = 0.5 if str(config.effect_size_measure) == "cles" else 1.0
        zero = Interval(0.0, 0.0, 0.0, config.confidence)
        return cls(
            **{
                **result.__dict__,
                "interval": zero,
                "p_value": 1.0,
                "effect_size": neutral,
                "mean_ratio": 1.0 if result.control.mean != 0 else math.nan,
                "cles": 0.5,
            }
        )

    @classmethod
    def error(cls, name: str, reason: str, config: MetricConfig) -> MetricResult:
        """A metric that could not be judged (bad values, provider failure)."""
        return cls(
            name=name,
            classification=Classification.ERROR,
            critical=config.critical,
            reason=reason,
            effect_size_measure=str(config.effect_size_measure),
            muted=config.muted,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly record for reports and audit (non-finite numbers become None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        data = asdict(self)
        data["classification"] = str(self.classification)
        kayenta = self.kayenta_classification
        data["kayenta_classification"] = str(kayenta) if kayenta is not None else None
        data["estimate"] = self.estimate
        return {k: clean(v) for k, v in data.items()}
