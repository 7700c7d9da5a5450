"""A running release and what a person tells it: ``suite release status | promote | abort``.

The flow writes ``releases/active/<service>.json`` (release, flow run, step, weight, last
verdict) as it goes; ``promote`` and ``abort`` write ``releases/control/<service>.json`` naming
the release they mean, which the flow reads between steps, during pauses and during analysis.
A command aimed at a release that has ended is refused, never left for the next one.

The same progress goes into the service's target state as its release :class:`Intent`
(``tasks/targets/state.py``), with the pid of the flow-run process that started it: while an
intent names a run that is gone, the release is unfinished and :mod:`tasks.reconcile` rolls it
back. Ending the release (``phase="ended"``) clears the intent.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from suite.errors import ConfigError
from suite.platform.files import atomic_write
from suite.settings import Settings
from tasks.targets.state import FileStore, Intent

#: the fields of :class:`Active` that its :class:`Intent` carries too
INTENDED = frozenset({"phase", "model", "model_version", "champion_before"})


class Command(StrEnum):
    PROMOTE = "promote"  # end an indefinite pause, or skip the remaining steps
    ABORT = "abort"  # roll back now


@dataclass(frozen=True)
class Active:
    service: str
    release: str
    flow_run_id: str
    strategy: str
    started: str
    step: str = ""
    weight: int = 0
    verdict: str = ""
    phase: str = "running"  # running | paused | waiting-approval | ended
    outcome: str = ""
    reason: str = ""
    pid: int = 0  # the flow-run process (filled in by Releases.start)
    pid_started: float = 0.0
    model: str = ""  # the model whose champion the release moves (see Intent)
    model_version: str = ""
    champion_before: str | None = None
    slot_lease: str = ""  # the lease on the service's release slot (filled in by Releases.start)
    notify: tuple[str, ...] = ()  # the manifest's notification URLs (the reconciler's too)


def _slot_lease() -> str:
    """The lease id of the newest concurrency slot this flow run holds ("" outside a run or
    before it took one): the release's ``release-<service>`` slot, taken just before it
    starts. Kept in the intent, so the reconciler can give back exactly that lease."""
    from prefect.concurrency.context import ConcurrencyContext

    ctx = ConcurrencyContext.get()
    return str(ctx.cleanup_lease_ids[-1]) if ctx is not None and ctx.cleanup_lease_ids else ""


def process_started(pid: int) -> float:
    """When process ``pid`` started (0.0 if it does not exist): with the pid, names a process
    even after the pid is reused."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


@dataclass(frozen=True)
class Control:
    release: str
    command: Command
    actor: str
    reason: str
    at: str
    #: an approver's identity token (suite.people): the flow checks it before acting
    identity_token: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Releases:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _active_path(self, service: str):
        return self.settings.dir("releases", "active", f"{service}.json")

    def _control_path(self, service: str):
        return self.settings.dir("releases", "control", f"{service}.json")

    def targets(self) -> FileStore:
        return FileStore(self.settings.dir("targets", "local"))

    def start(self, active: Active) -> None:
        """Record a release that begins in this process (its pid is the flow run's)."""
        if not active.pid:
            active = replace(active, pid=os.getpid(), pid_started=process_started(os.getpid()))
        if not active.slot_lease:
            active = replace(active, slot_lease=_slot_lease())
        atomic_write(self._active_path(active.service), json.dumps(asdict(active), indent=2))
        self._control_path(active.service).unlink(missing_ok=True)
        self._intend(active)

    def _intend(self, active: Active) -> None:
        """Write (or, once ended, clear) the release's intent in the service's target state."""
        store = self.targets()
        state = store.load(active.service)
        if active.phase == "ended":
            if state.release is None or state.release.release != active.release:
                return
            if state.canary is None and state.preview is None:
                store.save(replace(state, release=None))
            else:  # it ended with its canary still there: the reconciler must remove it
                store.save(replace(state, release=replace(state.release, phase="ended")))
            return
        intent = Intent(active.release, active.flow_run_id, active.strategy, active.started,
                        active.phase, active.pid, active.pid_started, active.model,
                        active.model_version, active.champion_before, active.slot_lease,
                        tuple(active.notify))
        if state.release != intent:
            store.save(replace(state, release=intent))

    def active(self, service: str) -> Active | None:
        try:
            data = json.loads(self._active_path(service).read_text())
            # fields a newer suite added are not this one's business (a rolling upgrade)
            known = {k: v for k, v in data.items() if k in Active.__dataclass_fields__}
            return Active(**{**known, "notify": tuple(known.get("notify", ()))})
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self._active_path(service)} is not a valid release record "
                              f"({exc})") from exc

    def update(self, service: str, **changes: object) -> None:
        current = self.active(service)
        if current is not None:
            updated = replace(current, **changes)  # type: ignore[arg-type]
            atomic_write(self._active_path(service), json.dumps(asdict(updated), indent=2))
            if INTENDED.intersection(changes):
                self._intend(updated)

    def send(self, service: str, command: Command, actor: str, reason: str,
             identity_token: str = "") -> Active:
        current = self.active(service)
        if current is None or current.phase == "ended":
            ended = f" (the last one, {current.release}, ended {current.outcome})" if current \
                else ""
            raise ConfigError(f"service {service!r} has no release in progress{ended}: "
                              f"nothing to {command.value}")
        atomic_write(self._control_path(service), json.dumps(asdict(Control(
            current.release, command, actor, reason, _now(), identity_token))), mode=0o600)
        return current

    def pending(self, service: str, release: str, consume: bool = True) -> Control | None:
        """The command for ``release``, if one was sent (consumed unless ``consume=False``)."""
        path = self._control_path(service)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if data.get("release") != release:
            return None
        if consume:
            path.unlink(missing_ok=True)
        return Control(data["release"], Command(data["command"]), data.get("actor", "?"),
                       data.get("reason", ""), data.get("at", ""),
                       str(data.get("identity_token") or ""))
