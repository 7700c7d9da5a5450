"""The deploy-target plugin boundary.

A target runs two versions of a service side by side and splits traffic between them. Roles:
``stable`` (serves the traffic), ``canary`` (the new version under test, gets a share) and
``preview`` (blue-green: the new colour, reachable on the preview address, no live traffic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from suite.errors import ConfigError


class Role(StrEnum):
    STABLE = "stable"
    CANARY = "canary"
    PREVIEW = "preview"


class Strategy(StrEnum):
    ROLLING = "rolling"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


@dataclass(frozen=True)
class Mount:
    source: str  # host directory
    target: str  # path in the container
    read_only: bool = True


@dataclass(frozen=True)
class Workload:
    """One version of a service: what to run, how many replicas, with what limits.

    Generic: any image with an HTTP port and a readiness path. Secrets travel as Vault
    references (``path#key`` per variable) and are read only when a container starts. A model
    is bound by its adapter (``tasks/deploy.py:bind_model``) as a read-only mount plus
    environment, for the services that declare ``model:``.
    """

    service: str
    release: str  # release id, unique per run
    version: str  # human label, e.g. the git sha prefix
    image: str  # reference by digest (repo@sha256:...) or tag
    port: int = 8080
    readiness: str = "/healthz"
    replicas: int = 1
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()  # (ENV, "services/<svc>/path#key")
    mounts: tuple[Mount, ...] = ()
    memory_bytes: int = 256 * 1024**2
    cpus: float = 0.5
    pids: int = 256
    host: str = ""  # route host
    model: str = ""  # "name vVERSION" when a model is bound (labels and reports)

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 32:
            raise ConfigError(f"replicas is {self.replicas} (expected 1..32 on the local target)")
        if not self.service.replace("-", "").isalnum():
            raise ConfigError(f"service name {self.service!r} must be letters, digits and '-'")

    @property
    def tag(self) -> str:
        """Short, unique per release: names this version's HAProxy servers."""
        return self.release.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class Instance:
    """One running replica."""

    container: str
    slot: str  # HAProxy server name, e.g. stable-1-3f9a2c
    port: int  # host port on 127.0.0.1
    release: str


@dataclass(frozen=True)
class Deployment:
    target: str
    service: str
    stable: Workload | None
    canary: Workload | None
    canary_weight: int  # percent of traffic on the canary (0..100)
    instances: dict[str, tuple[Instance, ...]] = field(default_factory=dict)  # role -> instances

    @property
    def weights(self) -> tuple[int, int]:
        return 100 - self.canary_weight, self.canary_weight


class DeployTarget(Protocol):
    name: str

    def reconcile(self, workload: Workload, role: Role) -> Deployment:
        """Make ``workload`` run healthy in ``role`` (idempotent)."""
        ...

    def set_weights(self, service: str, canary_percent: int) -> Deployment: ...

    def promote(self, service: str) -> Deployment:
        """The canary (or preview) becomes stable and takes all traffic; the old stable is
        kept unrouted until ``finalize`` (a rollback until then brings it back)."""
        ...

    def rollback(self, service: str) -> Deployment:
        """All traffic to stable; the canary (or preview) is removed."""
        ...

    def finalize(self, service: str) -> Deployment:
        """Remove what is kept only for instant rollback (the old colour)."""
        ...

    def status(self, service: str) -> Deployment: ...

    def problems(self, service: str, roles: tuple[str, ...] = ()) -> list[str]:
        """What is wrong with the running replicas (of ``roles``, default all) right now
        (empty: healthy)."""
        ...

    def heal(self, service: str, role: Role = Role.STABLE) -> list[str]:
        """Replace the dead replicas of ``role``; what was replaced (empty: all were alive)."""
        ...
