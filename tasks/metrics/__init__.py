"""Metric providers: one module per backend, registered by name here (no silent fallback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from suite.errors import ConfigError
from suite.plugins import lookup
from tasks.metrics.base import (
    Measurement,
    MetricProvider,
    ProviderStatus,
    Samples,
    SeriesProvider,
    SeriesValues,
    render_query,
    selector,
)
from tasks.metrics.prometheus import PrometheusProvider

PROVIDERS: dict[str, Callable[..., MetricProvider]] = {
    "prometheus": PrometheusProvider,
}


def get_provider(name: str, **options: Any) -> MetricProvider:
    """Build the provider registered as ``name`` with its options (e.g. ``address``)."""
    factory = lookup(PROVIDERS, name, "metric provider")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"metric provider {name!r} got invalid options: {exc}") from exc


__all__ = [
    "PROVIDERS",
    "Measurement",
    "MetricProvider",
    "PrometheusProvider",
    "ProviderStatus",
    "Samples",
    "SeriesProvider",
    "SeriesValues",
    "get_provider",
    "render_query",
    "selector",
]
