"""The local target's state transitions, over adapters passed in (as Flagger keeps its router
apart from the workload controller).

``Runner`` starts and removes replicas (containers), ``Router`` makes the traffic router serve a
state's replicas with its weights, ``Discovery`` tells Prometheus what to scrape, ``Store``
keeps the typed state record. Every transition follows one order: start what is new and wait
until it is ready, write the new state, publish it to the router and discovery, and only then
remove what the new state no longer names. A failure at any point leaves the old replicas
serving and a record naming everything that runs. Unit tests drive it with fakes of the four.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from suite.errors import DeployError
from suite.haproxy import Route, Server
from tasks.targets.base import Deployment, Instance, Role, Workload
from tasks.targets.state import TargetState, Track

#: let requests in flight on a replica leaving the router finish before it is removed
DRAIN_SECONDS = 0.5


class Runner(Protocol):
    def start(self, workload: Workload, role: str, index: int) -> Instance:
        """Start (or adopt, if already running) replica ``index``; return once it is ready."""
        ...

    def remove(self, instance: Instance) -> None: ...

    def running(self, instance: Instance) -> bool: ...

    def sweep(self, service: str, keep: set[str]) -> list[str]:
        """Remove every replica of ``service`` not named in ``keep``; return their names."""
        ...


class Router(Protocol):
    def publish(self, route: Route) -> None: ...

    def withdraw(self, service: str) -> None: ...


class Discovery(Protocol):
    def publish(self, state: TargetState) -> None: ...


class Store(Protocol):
    def load(self, service: str) -> TargetState: ...

    def save(self, state: TargetState) -> TargetState: ...

    def delete(self, service: str) -> None: ...


def split_weights(canary_percent: int, n_stable: int, n_canary: int) -> tuple[int, int]:
    """Per-server HAProxy weights (0..256) giving the canary ``canary_percent`` of traffic."""
    if not 0 <= canary_percent <= 100:
        raise DeployError(f"canary weight {canary_percent} % is outside 0..100")
    if n_canary == 0 or canary_percent == 0:
        return 100, 0
    if n_stable == 0 or canary_percent == 100:
        return 0, 100
    ws, wc = (100 - canary_percent) * n_canary, canary_percent * n_stable
    g = math.gcd(ws, wc)
    ws, wc = ws // g, wc // g
    top = max(ws, wc)
    if top > 256:
        ws, wc = max(1, round(ws * 256 / top)), max(1, round(wc * 256 / top))
    return ws, wc


def route_of(state: TargetState, host: str, health: str) -> Route:
    """What the router must serve for ``state``: pure."""
    stable = state.stable.instances if state.stable else ()
    canary = state.canary.instances if state.canary else ()
    ws, wc = split_weights(state.canary_weight, len(stable), len(canary))
    live = tuple(Server(i.slot, i.port, ws) for i in stable) + tuple(
        Server(i.slot, i.port, wc) for i in canary)
    preview = tuple(Server(i.slot, i.port, 100)
                    for i in (state.preview.instances if state.preview else ()))
    unjudged = state.release.release if state.release and (canary or preview) else ""
    return Route(state.service, host, health, live, preview, release=unjudged)


def slot(role: str, index: int, workload: Workload) -> str:
    return f"{role}-{index}-{workload.tag}"


def deployment(state: TargetState, target: str = "local") -> Deployment:
    canary = state.canary or state.preview
    return Deployment(
        target=target, service=state.service,
        stable=state.stable.workload if state.stable else None,
        canary=canary.workload if canary else None, canary_weight=state.canary_weight,
        instances={role: t.instances for role, t in state.tracks()},
    )


class Controller:
    name = "local"

    def __init__(self, store: Store, runner: Runner, router: Router, discovery: Discovery,
                 pause: Callable[[float], None] = time.sleep) -> None:
        self.store, self.runner, self.router, self.discovery = store, runner, router, discovery
        self.pause = pause

    # -- helpers ---------------------------------------------------------------------------
    def _publish(self, state: TargetState) -> TargetState:
        saved = self.store.save(state)
        wl = _any_workload(saved)
        if wl is not None:
            self.router.publish(route_of(saved, wl.host or f"{wl.service}.localhost",
                                         wl.readiness))
        self.discovery.publish(saved)
        return saved

    def _remove(self, instances: tuple[Instance, ...] | list[Instance], keep: TargetState) -> None:
        named = {i.container for _, t in keep.tracks() for i in t.instances}
        doomed = [i for i in instances if i.container not in named]
        if doomed:
            self.pause(DRAIN_SECONDS)
        for inst in doomed:
            self.runner.remove(inst)

    def _start_all(self, workload: Workload, role: str) -> tuple[Instance, ...]:
        started: list[Instance] = []
        try:
            for index in range(1, workload.replicas + 1):
                started.append(self.runner.start(workload, role, index))
        except Exception:
            for inst in started:  # none of them was ever routed: remove at once
                self.runner.remove(inst)
            raise
        return tuple(started)

    # -- the protocol ----------------------------------------------------------------------
    def status(self, service: str) -> Deployment:
        return deployment(self.store.load(service))

    def state(self, service: str) -> TargetState:
        return self.store.load(service)

    def reconcile(self, workload: Workload, role: Role) -> Deployment:
        role = Role(role)
        state = self.store.load(workload.service)
        current = state.track(role)
        if current and current.workload == workload and all(
                self.runner.running(i) for i in current.instances):
            return deployment(self._publish(state))
        if role == Role.STABLE and state.stable is not None:
            return self._rolling(state, workload)
        old = current.instances if current else ()
        instances = self._start_all(workload, role.value)
        state = self._publish(state.with_track(role, Track(workload, instances)))
        self._remove(old, state)
        return deployment(state)

    def _rolling(self, state: TargetState, workload: Workload) -> Deployment:
        """Replace stable replicas one at a time; each new one is ready before an old one goes."""
        assert state.stable is not None
        old = list(state.stable.instances)
        new: list[Instance] = []
        for index in range(1, workload.replicas + 1):
            new.append(self.runner.start(workload, "stable", index))
            leaving, old = old[:1], old[1:]
            state = self._publish(state.with_track(Role.STABLE,
                                                   Track(workload, tuple(new + old))))
            self._remove(leaving, state)
        state = self._publish(state.with_track(Role.STABLE, Track(workload, tuple(new))))
        self._remove(old, state)
        return deployment(state)

    def set_weights(self, service: str, canary_percent: int) -> Deployment:
        state = self.store.load(service)
        if state.canary is None:
            raise DeployError(f"service {service!r} has no canary to send {canary_percent} % to")
        split_weights(canary_percent, 1, 1)  # validates the range
        return deployment(self._publish(replace(state, canary_weight=canary_percent)))

    def promote(self, service: str) -> Deployment:
        state = self.store.load(service)
        source = state.canary or state.preview
        if source is None:
            raise DeployError(f"service {service!r} has nothing to promote (no canary/preview)")
        replicas = max(source.workload.replicas,
                       state.stable.workload.replicas if state.stable else 1)
        workload = replace(source.workload, replicas=replicas)
        moved = [replace(inst, slot=slot("stable", n, workload))
                 for n, inst in enumerate(source.instances, start=1)]
        extra = [self.runner.start(workload, "stable", n)
                 for n in range(len(moved) + 1, replicas + 1)]
        # the old stable stays (unrouted) as ``previous`` until finalize, for canary and
        # blue-green alike: until then a rollback is instant and complete (the release's
        # promotion unit — traffic, champion, audit — can still be compensated)
        stale = state.previous.instances if state.previous else ()
        new_state = replace(state, stable=Track(workload, tuple(moved + extra)), canary=None,
                            preview=None, canary_weight=0, previous=state.stable)
        new_state = self._publish(new_state)
        self._remove(stale, new_state)
        return deployment(new_state)

    def rollback(self, service: str) -> Deployment:
        state = self.store.load(service)
        if state.canary or state.preview:
            doomed = (state.canary.instances if state.canary else ()) + (
                state.preview.instances if state.preview else ())
            state = self._publish(replace(state, canary=None, preview=None, canary_weight=0))
            self._remove(doomed, state)
        elif state.previous is not None:
            # blue-green after the switch: the old colour still runs; switch back to it
            doomed = state.stable.instances if state.stable else ()
            state = self._publish(replace(state, stable=state.previous, previous=None))
            self._remove(doomed, state)
        self.sweep(service, state)
        return deployment(state)

    def sweep(self, service: str, state: TargetState | None = None) -> list[str]:
        """Remove the replicas of ``service`` that its state does not name — started by a run
        that died between starting them and saving the state (a start comes before its save, so
        that a saved replica is always a ready one). Called on every rollback, which is how the
        reconciler ends a dead release: only one release of a service runs at a time, so nothing
        else is starting replicas of it then."""
        state = state if state is not None else self.store.load(service)
        return self.runner.sweep(service, {i.container for _, t in state.tracks()
                                           for i in t.instances})

    def finalize(self, service: str) -> Deployment:
        state = self.store.load(service)
        if state.previous is None:
            return deployment(state)
        doomed = state.previous.instances
        state = self._publish(replace(state, previous=None))
        self._remove(doomed, state)
        return deployment(state)

    def teardown(self, service: str) -> None:
        """Remove every replica of ``service`` and its routes (``suite services remove``)."""
        state = self.store.load(service)
        everything = [i for _, t in state.tracks() for i in t.instances]
        self.router.withdraw(service)
        self.discovery.publish(TargetState(service=service))
        for inst in everything:
            self.runner.remove(inst)
        self.runner.sweep(service, set())
        self.store.delete(service)

    def problems(self, service: str, roles: tuple[str, ...] = ()) -> list[str]:
        """Replicas that should run but do not (a crashed or killed container); only those of
        ``roles`` when given."""
        state = self.store.load(service)
        return [f"{role} replica {inst.container} is not running"
                for role, track in state.tracks() if role != "previous"
                and (not roles or role in roles)
                for inst in track.instances if not self.runner.running(inst)]

    def heal(self, service: str, role: Role = Role.STABLE) -> list[str]:
        """Replace the replicas of ``role`` that died (each new one ready before it is routed),
        keep the live ones untouched, and return what was replaced ([] when all run). The
        replacement gets a new router slot (``stable-2r1-TAG``): the dead server leaves the
        router, the new one joins it, as in any transition."""
        state = self.store.load(service)
        track = state.track(role)
        if track is None:
            return []
        dead = [i for i in track.instances if not self.runner.running(i)]
        if not dead:
            return []
        instances = list(track.instances)
        done = []
        for inst in dead:
            index, generation = _slot_index(inst.slot, instances.index(inst) + 1)
            fresh = self.runner.start(track.workload, str(role), index)
            fresh = replace(fresh, slot=f"{role}-{index}r{generation + 1}-{track.workload.tag}")
            instances[instances.index(inst)] = fresh
            done.append(f"{role} replica {inst.container} (port {inst.port}) replaced by "
                        f"{fresh.container} (port {fresh.port})")
        state = self._publish(state.with_track(role, Track(track.workload, tuple(instances))))
        self._remove(dead, state)
        return done


def _slot_index(name: str, fallback: int) -> tuple[int, int]:
    """(replica index, replacement generation) of a slot ``ROLE-N-TAG`` or ``ROLE-NrG-TAG``."""
    found = re.match(r"^[a-z]+-(\d+)(?:r(\d+))?-", name)
    if found is None:
        return fallback, 0
    return int(found.group(1)), int(found.group(2) or 0)


def _any_workload(state: TargetState) -> Workload | None:
    for _, track in state.tracks():
        return track.workload
    return None
