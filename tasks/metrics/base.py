"""The metric-provider plugin boundary.

A provider answers three questions: the samples of a query over a time window (baseline and
canary series for the judge), the value of a query now (one measurement for a threshold check),
and whether the backend is reachable. A provider never raises out of these calls: a failure
becomes a ``Samples``/``Measurement`` carrying the error message, so one bad query cannot abort
an analysis and every failure is visible in the report.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from suite.errors import ConfigError


@dataclass(frozen=True)
class Samples:
    """Values of a range query (every point of every matching series) or the error."""

    query: str
    values: tuple[float, ...] = ()
    series: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Measurement:
    """One value of an instant query, or the error that stood in its way."""

    value: float | None = None
    error: str | None = None
    query: str = ""

    def __post_init__(self) -> None:
        if (self.value is None) == (self.error is None):
            raise ConfigError("a measurement has either a value or an error (got both or neither)")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def is_nan(self) -> bool:
        return self.value is not None and math.isnan(self.value)


@dataclass(frozen=True)
class SeriesValues:
    """Every series of an instant query, each with its labels, or the error. For raw counters
    (e.g. ``http_requests_total{...}`` without ``sum``/``rate``), so that the caller can see a
    reset per series, as Prometheus's ``increase()`` does."""

    query: str
    series: tuple[tuple[tuple[tuple[str, str], ...], float], ...] = ()  # (sorted labels, value)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class SeriesProvider(Protocol):
    """Optional capability (sequential tests): the value of every series of a query now."""

    def query_series(self, query: str, at: datetime | None = None) -> SeriesValues: ...


@dataclass(frozen=True)
class ProviderStatus:
    online: bool
    reason: str


@runtime_checkable
class MetricProvider(Protocol):
    name: str

    def query(self, query: str, start: datetime, end: datetime, step_seconds: float) -> Samples:
        """Every point of the matching series between start and end."""
        ...

    def query_instant(self, query: str, at: datetime | None = None) -> Measurement:
        """The single value of the query at ``at`` (now when None)."""
        ...

    def check_online(self) -> ProviderStatus: ...


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(labels: Mapping[str, str]) -> str:
    """``{"app": "web", "track": "canary"}`` -> ``app="web",track="canary"`` (PromQL matchers)."""
    for key in labels:
        if not key.isidentifier():
            raise ConfigError(f"label name {key!r} is not valid (expected letters, digits, _)")
    return ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())


def render_query(
    template: str, labels: Mapping[str, str], variables: Mapping[str, str] | None = None
) -> str:
    """Fill ``${selector}`` (and any ``${name}`` in variables, also inside label values) of a
    query template."""
    variables = dict(variables or {})
    try:
        filled = {k: string.Template(str(v)).substitute(variables) for k, v in labels.items()}
    except (KeyError, ValueError) as exc:
        problem = f"label matchers {dict(labels)} use an undefined variable ({exc})"
        raise ConfigError(problem) from exc
    values = {**variables, "selector": selector(filled)}
    try:
        return string.Template(template).substitute(values)
    except KeyError as exc:
        raise ConfigError(
            f"query {template!r} uses ${{{exc.args[0]}}} which is not defined "
            f"(known: {', '.join(sorted(values))})"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"query {template!r} has a stray '$' ({exc}); write $$ for $") from exc
