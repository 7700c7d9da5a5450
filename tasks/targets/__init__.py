"""Deploy targets: an explicit registry; an unknown name is an error listing the known ones."""

from __future__ import annotations

from collections.abc import Callable

from suite.errors import ConfigError
from suite.settings import Settings
from tasks.targets.base import DeployTarget


def _local(settings: Settings) -> DeployTarget:
    from tasks.targets.local import LocalTarget

    return LocalTarget(settings)


TARGETS: dict[str, Callable[[Settings], DeployTarget]] = {
    "local": _local,
}


def get_target(name: str, settings: Settings) -> DeployTarget:
    try:
        factory = TARGETS[name]
    except KeyError as exc:
        raise ConfigError(
            f"unknown deploy target {name!r} (known: {', '.join(sorted(TARGETS))})"
        ) from exc
    return factory(settings)
