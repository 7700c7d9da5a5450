"""The base of every local-platform service: adding a service is one small subclass.

A service says which binaries it needs (and the package that brings each), how to prepare its
state directory, the command that runs it in the foreground, how to tell it is healthy, and what
to do once it is up (Vault unseal, Prefect work pool). Starting, stopping and status are common.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from suite.errors import MissingBinary
from suite.platform import process
from suite.settings import Settings, child_env

EXTRA_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def find_binary(name: str, hint: str) -> str:
    """Locate ``name`` in the project's venv, on PATH, or in known system dirs."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    for extra in EXTRA_BIN_DIRS:
        if (extra / name).exists():
            return str(extra / name)
    raise MissingBinary(f"'{name}' is not installed: {hint} (or run `make install`)")


def http_ok(url: str, timeout: float = 2.0, ok: tuple[int, ...] = (200,),
            headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=timeout, headers=headers).status_code in ok
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Status:
    name: str
    url: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str = ""

    @property
    def state(self) -> str:
        if self.running and self.healthy:
            return "healthy"
        if self.running:
            return "unhealthy"
        return "down"


class Service:
    """Override the hooks; the lifecycle lives in :mod:`suite.platform.manager`."""

    name: str = ""
    port_key: str | None = None
    requires: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM
    start_timeout: float = 60.0
    #: binary name -> how to install it
    binaries: Mapping[str, str] = {}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- paths -----------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.settings.dir(self.name)

    @property
    def log_path(self) -> Path:
        return self.settings.dir("logs", f"{self.name}.log")

    @property
    def run_dir(self) -> Path:
        return self.settings.dir("run")

    @property
    def port(self) -> int | None:
        return self.settings.port(self.port_key) if self.port_key else None

    @property
    def url(self) -> str:
        return self.settings.url(self.port_key) if self.port_key else ""

    def binary(self, name: str) -> str:
        return find_binary(name, self.binaries.get(name, f"install '{name}'"))

    def check_binaries(self) -> None:
        for name in self.binaries:
            self.binary(name)

    # -- hooks -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create config files and initialise state (idempotent)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return child_env(self.settings)

    def extra_ports(self) -> list[int]:
        """Ports besides ``port`` that the service binds (checked before start)."""
        return []

    def preexec(self) -> object | None:
        return None

    def healthy(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        """Work that needs the running service (idempotent)."""

    def before_stop(self) -> None:
        """Work while the service still runs, just before it is stopped (best effort)."""

    def after_stop(self) -> list[str]:
        """Cleanup once the process is gone (or found dead); returns what it did (best effort)."""
        return []

    def detail(self) -> str:
        return ""

    # -- common ----------------------------------------------------------------------------
    def record(self) -> process.ProcessRecord | None:
        return process.read_record(self.run_dir, self.name)

    def status(self) -> Status:
        rec = self.record()
        running = rec is not None and rec.alive()
        healthy = running and self.healthy()
        return Status(
            self.name,
            self.url,
            rec.pid if rec and running else None,
            running,
            healthy,
            self.detail() if running else "",
        )
