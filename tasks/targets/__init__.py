"""Deploy targets: an explicit registry; an unknown name is an error listing the known ones."""

from __future__ import annotations

from collections.abc import Callable

from suite.plugins import lookup
from suite.settings import Settings
from tasks.targets.base import DeployTarget


def _local(settings: Settings) -> DeployTarget:
    from tasks.targets.local import LocalTarget

    return LocalTarget(settings)


TARGETS: dict[str, Callable[[Settings], DeployTarget]] = {
    "local": _local,
}


def get_target(name: str, settings: Settings) -> DeployTarget:
    return lookup(TARGETS, name, "deploy target")(settings)
