"""The local target's per-service state: a typed, versioned record written atomically.

``targets/local/<service>.json`` says which workload runs in which role, on which replicas, and
the canary's share of the traffic. Every transition of :mod:`tasks.targets.controller` writes a
new record before it removes anything, so a crash leaves a record that names every container
still running. An unknown version or a broken file is an error naming the file and the fix,
never silently a fresh state.

A release in progress writes its :class:`Intent` here too (release, flow run, strategy, phase,
start, the flow-run process): a record that still names a release whose run is gone is an
unfinished release, which :mod:`tasks.reconcile` returns to stable. Version 2 (before intents)
is read as a state with no release in progress.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from suite.errors import ConfigError
from suite.platform.files import atomic_write
from tasks.targets.base import Instance, Mount, Role, Workload

VERSION = 3
#: versions this module reads (older ones have no ``release`` intent)
READS = (2, 3)


@dataclass(frozen=True)
class Intent:
    """The release that is changing this service: what it wants and how far it got."""

    release: str
    flow_run_id: str
    strategy: str
    started: str
    phase: str = "running"
    pid: int = 0  # the flow-run process (0: unknown)
    pid_started: float = 0.0  # its start time (psutil), so a reused pid is not taken for it
    model: str = ""  # the service's model, when the release moves its ``champion`` alias
    model_version: str = ""  # the version the release makes champion
    champion_before: str | None = None  # the champion when the release began (None: none)
    slot_lease: str = ""  # the lease on the service's release slot ("" when not known)
    notify: tuple[str, ...] = ()  # where the release's outcome is announced (the manifest's)


@dataclass(frozen=True)
class Track:
    workload: Workload
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class TargetState:
    service: str
    stable: Track | None = None
    canary: Track | None = None
    preview: Track | None = None
    previous: Track | None = None  # blue-green: the old colour, kept for instant rollback
    canary_weight: int = 0
    generation: int = 0
    release: Intent | None = None  # the release in progress, if any
    version: int = VERSION

    def track(self, role: Role | str) -> Track | None:
        value: Track | None = getattr(self, str(role))
        return value

    def with_track(self, role: Role | str, track: Track | None) -> TargetState:
        changes: dict[str, Any] = {str(role): track}
        return replace(self, **changes)

    def tracks(self) -> list[tuple[str, Track]]:
        return [(name, t) for name in ("stable", "canary", "preview", "previous")
                if (t := getattr(self, name)) is not None]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _workload(data: dict[str, Any]) -> Workload:
    data = dict(data)
    data["env"] = tuple(tuple(kv) for kv in data.get("env", ()))
    data["secrets"] = tuple(tuple(kv) for kv in data.get("secrets", ()))
    data["mounts"] = tuple(Mount(**m) for m in data.get("mounts", ()))
    return Workload(**data)


def _track(data: dict[str, Any] | None) -> Track | None:
    if not data:
        return None
    return Track(_workload(data["workload"]),
                 tuple(Instance(**i) for i in data.get("instances", ())))


def from_json(text: str, where: str) -> TargetState:
    try:
        data = json.loads(text)
        version = data.get("version")
        if version not in READS:
            raise ConfigError(f"{where}: state version {version!r} is not one of {READS} "
                              f"(written by another release of the suite; `suite services "
                              f"remove NAME --teardown` and release again)")
        intent = data.get("release")
        return TargetState(
            service=data["service"], canary_weight=int(data.get("canary_weight", 0)),
            generation=int(data.get("generation", 0)), stable=_track(data.get("stable")),
            canary=_track(data.get("canary")), preview=_track(data.get("preview")),
            previous=_track(data.get("previous")),
            release=Intent(**{**intent, "notify": tuple(intent.get("notify", ()))})
            if intent else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where} is not a valid target state ({type(exc).__name__}: {exc}); "
                          f"fix or remove it (`suite services remove NAME --teardown`)") from exc


class FileStore:
    """State records under ``folder`` (``<home>/targets/local``), one file per service."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, service: str) -> Path:
        return self.folder / f"{service}.json"

    def load(self, service: str) -> TargetState:
        path = self.path(service)
        try:
            return from_json(path.read_text(), str(path))
        except FileNotFoundError:
            return TargetState(service=service)

    def save(self, state: TargetState) -> TargetState:
        saved = replace(state, generation=state.generation + 1)
        atomic_write(self.path(state.service), saved.to_json())
        return saved

    def delete(self, service: str) -> None:
        self.path(service).unlink(missing_ok=True)

    def services(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []
