"""The local target's transitions against fakes of its adapters (as Flagger tests each router):
the order of start / publish / remove, weights, promotion, rollback, and what a failure leaves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from suite.errors import DeployError
from suite.haproxy import Route
from tasks.targets.base import Instance, Role, Workload
from tasks.targets.controller import Controller, route_of, split_weights
from tasks.targets.state import FileStore, TargetState


class FakeRunner:
    def __init__(self, log: list[str], fail_on: str = "") -> None:
        self.log, self.fail_on = log, fail_on
        self.alive: set[str] = set()
        self.port = 20000

    def start(self, wl: Workload, role: str, index: int) -> Instance:
        name = f"{wl.service}-{wl.release}-{role}-{index}"
        if name == self.fail_on:
            raise DeployError(f"{name} not ready")
        self.port += 1
        self.alive.add(name)
        self.log.append(f"start {name}")
        return Instance(name, f"{role}-{index}-{wl.tag}", self.port, wl.release)

    def remove(self, inst: Instance) -> None:
        self.alive.discard(inst.container)
        self.log.append(f"remove {inst.container}")

    def running(self, inst: Instance) -> bool:
        return inst.container in self.alive

    def sweep(self, service: str, keep: set[str]) -> list[str]:
        gone = sorted(n for n in self.alive if n.startswith(f"{service}-") and n not in keep)
        for name in gone:
            self.alive.discard(name)
            self.log.append(f"sweep {name}")
        return gone


class FakeRouter:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.routes: dict[str, Route] = {}

    def publish(self, route: Route) -> None:
        self.routes[route.service] = route
        self.log.append("publish " + ",".join(f"{s.name}:{s.weight}" for s in route.live))

    def withdraw(self, service: str) -> None:
        self.routes.pop(service, None)
        self.log.append("withdraw")


class FakeDiscovery:
    def __init__(self) -> None:
        self.states: dict[str, TargetState] = {}

    def publish(self, state: TargetState) -> None:
        self.states[state.service] = state


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
def parts(tmp_path: Path, log: list[str]) -> tuple[Controller, FakeRunner, FakeRouter]:
    runner, router = FakeRunner(log), FakeRouter(log)
    ctl = Controller(FileStore(tmp_path), runner, router, FakeDiscovery(), pause=lambda _: None)
    return ctl, runner, router


def wl(release: str, replicas: int = 2) -> Workload:
    return Workload(service="web", release=release, version=release[:8], image=f"img:{release}",
                    replicas=replicas, host="web.localhost")


def test_first_deploy_starts_then_routes_all_replicas(parts, log) -> None:
    ctl, _runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    assert log == ["start web-aaaa-000001-stable-1", "start web-aaaa-000001-stable-2",
                   "publish stable-1-000001:100,stable-2-000001:100"]
    assert router.routes["web"].host == "web.localhost"


def test_canary_weights_and_promotion_order(parts, log) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.reconcile(wl("bbbb-000002", replicas=1), Role.CANARY)
    ctl.set_weights("web", 20)
    live = {s.name: s.weight for s in router.routes["web"].live}
    # one canary against two stable replicas: 20 % of the traffic on the canary
    assert live == {"stable-1-000001": 2, "stable-2-000001": 2, "canary-1-000002": 1}
    log.clear()
    dep = ctl.promote("web")
    # promotion keeps the canary container, starts one more (stable had 2); the old stable is
    # unrouted but kept until finalize (the promotion can still be compensated)
    assert log == ["start web-bbbb-000002-stable-2",
                   "publish stable-1-000002:100,stable-2-000002:100"]
    assert dep.stable is not None and dep.stable.release == "bbbb-000002" and dep.canary is None
    log.clear()
    ctl.finalize("web")
    assert log[1:] == ["remove web-aaaa-000001-stable-1", "remove web-aaaa-000001-stable-2"]
    assert runner.alive == {"web-bbbb-000002-canary-1", "web-bbbb-000002-stable-2"}


def test_a_promoted_canary_is_rolled_back_to_the_old_stable_until_finalized(parts, log) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.reconcile(wl("bbbb-000002"), Role.CANARY)
    ctl.set_weights("web", 100)
    ctl.promote("web")
    dep = ctl.rollback("web")
    assert dep.stable is not None and dep.stable.release == "aaaa-000001"
    assert [s.name for s in router.routes["web"].live] == ["stable-1-000001", "stable-2-000001"]
    assert runner.alive == {"web-aaaa-000001-stable-1", "web-aaaa-000001-stable-2"}


def test_a_dead_stable_replica_is_replaced_and_the_canary_left_alone(parts, log) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.reconcile(wl("bbbb-000002", replicas=1), Role.CANARY)
    ctl.set_weights("web", 20)
    runner.alive.discard("web-aaaa-000001-stable-2")
    assert ctl.problems("web", ("canary",)) == []
    assert ctl.problems("web", ("stable",)) == [
        "stable replica web-aaaa-000001-stable-2 is not running"]
    log.clear()
    healed = ctl.heal("web")
    assert healed == ["stable replica web-aaaa-000001-stable-2 (port 20002) replaced by "
                      "web-aaaa-000001-stable-2 (port 20004)"]
    # started (ready) before it is routed; the same container name, a new router slot
    assert log == ["start web-aaaa-000001-stable-2",
                   "publish stable-1-000001:2,stable-2r1-000001:2,canary-1-000002:1"]
    assert ctl.problems("web") == [] and ctl.heal("web") == []
    runner.alive.discard("web-aaaa-000001-stable-2")
    ctl.heal("web")
    assert [s.name for s in router.routes["web"].live][1] == "stable-2r2-000001"
    state = ctl.state("web")
    assert state.canary is not None and state.canary_weight == 20


def test_rollback_routes_back_before_removing_the_canary(parts, log) -> None:
    ctl, _runner, _ = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.reconcile(wl("bbbb-000002"), Role.CANARY)
    ctl.set_weights("web", 50)
    log.clear()
    dep = ctl.rollback("web")
    assert log[0] == "publish stable-1-000001:100,stable-2-000001:100"
    assert log[1:] == ["remove web-bbbb-000002-canary-1", "remove web-bbbb-000002-canary-2"]
    assert dep.canary is None and dep.canary_weight == 0


def test_a_rollback_removes_replicas_a_dead_run_started_but_never_saved(parts, log) -> None:
    """A run killed between starting its canary and saving the state leaves containers no state
    names: the reconciler's rollback removes them and leaves what the state names alone."""
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    runner.start(wl("bbbb-000002"), "canary", 1)  # ... and the run died here
    other = replace(wl("cccc-000003"), service="api", host="api.localhost")
    runner.start(other, "canary", 1)  # another service's replica is not touched
    log.clear()
    dep = ctl.rollback("web")
    assert log == ["sweep web-bbbb-000002-canary-1"]
    assert runner.alive == {"web-aaaa-000001-stable-1", "web-aaaa-000001-stable-2",
                            "api-cccc-000003-canary-1"}
    assert dep.canary is None
    assert [s.name for s in router.routes["web"].live] == ["stable-1-000001", "stable-2-000001"]


def test_a_canary_that_never_gets_ready_leaves_stable_serving(parts, log, tmp_path) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    runner.fail_on = "web-bbbb-000002-canary-2"
    with pytest.raises(DeployError, match="not ready"):
        ctl.reconcile(wl("bbbb-000002"), Role.CANARY)
    state = FileStore(tmp_path).load("web")
    assert state.canary is None and state.stable is not None
    assert "web-bbbb-000002-canary-1" not in runner.alive  # the started one was removed
    assert [s.name for s in router.routes["web"].live] == ["stable-1-000001", "stable-2-000001"]


def test_rolling_update_replaces_one_replica_at_a_time(parts, log) -> None:
    ctl, _, _router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    log.clear()
    ctl.reconcile(wl("cccc-000003"), Role.STABLE)
    assert log == [
        "start web-cccc-000003-stable-1",
        "publish stable-1-000003:100,stable-2-000001:100",
        "remove web-aaaa-000001-stable-1",
        "start web-cccc-000003-stable-2",
        "publish stable-1-000003:100,stable-2-000003:100",
        "remove web-aaaa-000001-stable-2",
        "publish stable-1-000003:100,stable-2-000003:100",
    ]


def test_blue_green_keeps_the_old_colour_until_finalized(parts, log) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.reconcile(wl("dddd-000004"), Role.PREVIEW)
    assert [s.name for s in router.routes["web"].preview] == ["preview-1-000004",
                                                               "preview-2-000004"]
    ctl.promote("web")
    assert "web-aaaa-000001-stable-1" in runner.alive  # kept for an instant rollback
    assert [s.name for s in router.routes["web"].live] == ["stable-1-000004", "stable-2-000004"]
    ctl.rollback("web")
    assert [s.name for s in router.routes["web"].live] == ["stable-1-000001", "stable-2-000001"]
    assert "web-dddd-000004-preview-1" not in runner.alive


def test_reconcile_is_idempotent(parts, log) -> None:
    ctl, _, _ = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    log.clear()
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    assert not [line for line in log if line.startswith(("start", "remove"))]


def test_problems_name_dead_replicas(parts) -> None:
    ctl, runner, _ = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    runner.alive.discard("web-aaaa-000001-stable-2")
    assert ctl.problems("web") == ["stable replica web-aaaa-000001-stable-2 is not running"]


def test_set_weight_without_canary_is_refused(parts) -> None:
    ctl, _, _ = parts
    with pytest.raises(DeployError, match="no canary"):
        ctl.set_weights("web", 20)


def test_teardown_withdraws_routes_and_state(parts, tmp_path) -> None:
    ctl, runner, router = parts
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    ctl.teardown("web")
    assert not runner.alive and "web" not in router.routes
    assert not (tmp_path / "web.json").exists()


@pytest.mark.parametrize(("pct", "ns", "nc", "expected"), [
    (0, 2, 2, (100, 0)), (100, 2, 2, (0, 100)), (20, 2, 2, (4, 1)), (50, 3, 1, (1, 3)),
    (1, 32, 1, (99, 32)),
])
def test_split_weights(pct: int, ns: int, nc: int, expected: tuple[int, int]) -> None:
    assert split_weights(pct, ns, nc) == expected


def test_state_round_trips_and_refuses_other_versions(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    w = wl("aaaa-000001")
    from tasks.targets.base import Mount
    w = replace(w, mounts=(Mount("/m", "/model"),), secrets=(("PW", "services/web/db#pw"),))
    from tasks.targets.state import Track
    saved = store.save(TargetState("web", stable=Track(w, (Instance("c", "s", 1, "r"),))))
    assert store.load("web") == saved and saved.generation == 1
    (tmp_path / "web.json").write_text('{"version": 1, "service": "web"}')
    with pytest.raises(Exception, match="state version 1 is not one of"):
        store.load("web")


def test_route_of_is_pure() -> None:
    from tasks.targets.state import Track
    st = TargetState("web", stable=Track(wl("aaaa-000001"), (Instance("c", "stable-1-x", 5,
                                                                      "r"),)))
    assert route_of(st, "h", "/ready").live[0].weight == 100
