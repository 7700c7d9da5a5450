"""Plugin registries (targets, scanners, metric providers): one lookup, one error message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from suite.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """The entry registered as ``name``; unknown is an error listing the known names."""
    try:
        return registry[name]
    except KeyError as exc:
        raise ConfigError(
            f"unknown {kind} {name!r} (known: {', '.join(sorted(registry))})"
        ) from exc
