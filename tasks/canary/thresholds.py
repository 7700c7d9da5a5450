"""Threshold checks beside the statistical judge, as Argo Rollouts' analysis and Flagger do them.

A check has a success and/or a failure condition (``result >= 0.99``, ``result <= 0.5``) and is
measured repeatedly. Each measurement is:

* ERROR when the provider failed; INCONCLUSIVE when the value is NaN (no traffic: nothing to
  judge);
* with both conditions: FAILED if the failure condition holds, else SUCCESSFUL if the success
  condition holds, else INCONCLUSIVE;
* with only a success condition: SUCCESSFUL if it holds, else FAILED; with only a failure
  condition: FAILED if it holds, else SUCCESSFUL; with neither: SUCCESSFUL.

The check as a whole (Argo's order): FAILED when failed > failure_limit, INCONCLUSIVE when
inconclusive > inconclusive_limit, ERROR when consecutive errors > consecutive_error_limit,
SUCCESSFUL once ``count`` measurements are in (or when the analysis ends), else RUNNING. Unlike
Argo, a check that ends without a single measurement is INCONCLUSIVE, not SUCCESSFUL: nothing was
checked.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from suite.errors import ConfigError
from tasks.metrics.base import Measurement

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*(?:result\s*)?(<=|>=|==|!=|<|>)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Condition:
    """``result <op> value``; parsed from text such as ``"result >= 0.99"`` or ``"<= 0.5"``."""

    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.match(text) if isinstance(text, str) else None
        if not match:
            raise ConfigError(
                f"condition {text!r} is not understood (expected e.g. 'result >= 0.99': "
                f"one of {', '.join(_OPERATORS)} and a number)"
            )
        return cls(match.group(1), float(match.group(2)))

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"result {self.op} {self.value:g}"


class Phase(StrEnum):
    """Of one measurement, and of a whole check (RUNNING only for a check)."""

    RUNNING = "RUNNING"
    SUCCESSFUL = "SUCCESSFUL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"
    FAILED = "FAILED"

    @property
    def rank(self) -> int:
        """Argo's order, best to worst."""
        return list(Phase).index(self)


def worst_phase(phases: Sequence[Phase]) -> Phase:
    return max(phases, key=lambda p: p.rank, default=Phase.SUCCESSFUL)


def _limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} is {value!r} (expected a whole number >= 0)")
    return value


@dataclass(frozen=True)
class ThresholdCheck:
    name: str
    success_condition: Condition | None = None
    failure_condition: Condition | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    count: int | None = None  # measurements that conclude the check; None: until the end

    def __post_init__(self) -> None:
        for key in ("failure_limit", "inconclusive_limit", "consecutive_error_limit"):
            _limit(key, getattr(self, key))
        if self.count is not None and _limit("count", self.count) == 0:
            raise ConfigError("count is 0 (expected at least 1 measurement, or none for no limit)")


@dataclass(frozen=True)
class Evaluated:
    phase: Phase
    reason: str
    value: float | None = None


def evaluate(check: ThresholdCheck, measurement: Measurement) -> Evaluated:
    """The phase of one measurement."""
    if measurement.error is not None or measurement.value is None:
        return Evaluated(Phase.ERROR, f"measurement failed: {measurement.error}")
    value = measurement.value
    if math.isnan(value):
        return Evaluated(Phase.INCONCLUSIVE, "value is NaN (no data to judge)", value)
    success, failure = check.success_condition, check.failure_condition
    if failure is not None and failure.holds(value):
        return Evaluated(Phase.FAILED, f"{value:g} meets failure condition {failure}", value)
    if success is not None and success.holds(value):
        return Evaluated(Phase.SUCCESSFUL, f"{value:g} meets success condition {success}", value)
    if success is not None and failure is None:
        return Evaluated(Phase.FAILED, f"{value:g} misses success condition {success}", value)
    if success is None:
        met = "no condition" if failure is None else f"misses failure condition {failure}"
        return Evaluated(Phase.SUCCESSFUL, f"{value:g} {met}", value)
    return Evaluated(Phase.INCONCLUSIVE, f"{value:g} meets neither {success} nor {failure}", value)


@dataclass(frozen=True)
class Assessment:
    name: str
    phase: Phase
    reason: str
    measured: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    measurements: tuple[Evaluated, ...] = field(default=())


def assess(
    check: ThresholdCheck, measurements: Sequence[Measurement], *, terminating: bool = False
) -> Assessment:
    """The check's outcome after the measurements so far (oldest first)."""
    evaluated = tuple(evaluate(check, m) for m in measurements)
    counts = {phase: sum(1 for e in evaluated if e.phase == phase) for phase in Phase}
    consecutive = 0
    for e in evaluated:
        consecutive = consecutive + 1 if e.phase == Phase.ERROR else 0
    failed, inconclusive = counts[Phase.FAILED], counts[Phase.INCONCLUSIVE]

    def done(phase: Phase, reason: str) -> Assessment:
        return Assessment(
            check.name,
            phase,
            reason,
            len(evaluated),
            counts[Phase.SUCCESSFUL],
            failed,
            inconclusive,
            counts[Phase.ERROR],
            consecutive,
            evaluated,
        )

    if failed > check.failure_limit:
        return done(Phase.FAILED, f"failed ({failed}) > failure_limit ({check.failure_limit})")
    if inconclusive > check.inconclusive_limit:
        return done(
            Phase.INCONCLUSIVE,
            f"inconclusive ({inconclusive}) > inconclusive_limit ({check.inconclusive_limit})",
        )
    if consecutive > check.consecutive_error_limit:
        return done(
            Phase.ERROR,
            f"consecutive errors ({consecutive}) > consecutive_error_limit "
            f"({check.consecutive_error_limit}); last: {evaluated[-1].reason}",
        )
    summary = (
        f"{len(evaluated)} measured: failed ({failed}) <= failure_limit ({check.failure_limit})"
    )
    if check.count is not None and len(evaluated) >= check.count:
        return done(Phase.SUCCESSFUL, f"count ({check.count}) reached, {summary}")
    if terminating and not evaluated:
        return done(Phase.INCONCLUSIVE, "analysis ended without a single measurement")
    if terminating:
        return done(Phase.SUCCESSFUL, f"analysis ended, {summary}")
    return done(Phase.RUNNING, summary)
