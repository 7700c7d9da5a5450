"""The end of a release is consistent whatever failed: :func:`tasks.release.settle` against the
real controller over fakes of its adapters (tests/unit/targets), and a fake champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks import release as rel
from tasks.release import ChampionSide, settle
from tasks.targets.base import Role
from tasks.targets.controller import Controller
from tasks.targets.state import FileStore
from tests.unit.targets.test_controller import FakeDiscovery, FakeRouter, FakeRunner, wl

OLD, NEW = "aaaa-000001", "bbbb-000002"


@pytest.fixture
def ctl(tmp_path: Path) -> Controller:
    log: list[str] = []
    ctl = Controller(FileStore(tmp_path), FakeRunner(log), FakeRouter(log), FakeDiscovery(),
                     pause=lambda _: None)
    ctl.reconcile(wl(OLD), Role.STABLE)
    return ctl


class Champion:
    def __init__(self, now: str | None, version: str = "2", before: str | None = "1") -> None:
        self.now: str | None = now
        self.moves: list[str] = []
        self.side = ChampionSide(version, before, lambda: self.now, self.forward, self.back)

    def forward(self) -> None:
        self.now = self.side.version
        self.moves.append("forward")

    def back(self) -> None:
        self.now = self.side.before
        self.moves.append("back")


def test_a_canary_the_hooks_left_behind_is_rolled_back(ctl: Controller) -> None:
    ctl.reconcile(wl(NEW), Role.CANARY)
    ctl.set_weights("web", 50)
    done = settle(ctl, "web", NEW)
    assert done.serving == "old" and "rolled back" in done.notes[0]
    state = ctl.state("web")
    assert state.canary is None and state.stable is not None
    assert state.stable.workload.release == OLD


def test_a_promotion_before_its_point_of_no_return_is_compensated(ctl: Controller) -> None:
    """Traffic promoted and champion moved, then the unit failed (e.g. its audit record):
    the old stable comes back and the champion move is undone."""
    ctl.reconcile(wl(NEW), Role.CANARY)
    ctl.promote("web")
    champion = Champion(now="2")
    done = settle(ctl, "web", NEW, champion.side)
    assert done.serving == "old" and champion.now == "1" and champion.moves == ["back"]
    state = ctl.state("web")
    assert state.stable is not None and state.stable.workload.release == OLD
    assert state.previous is None


def test_a_new_version_that_is_all_of_stable_gets_its_champion(ctl: Controller) -> None:
    """A rolling update (no way back) whose champion move failed: completed forward."""
    ctl.reconcile(wl(NEW), Role.STABLE)
    champion = Champion(now="1")
    done = settle(ctl, "web", NEW, champion.side)
    assert done.serving == "new" and champion.now == "2" and champion.moves == ["forward"]


def test_a_release_that_never_deployed_leaves_an_older_leftover_alone(ctl: Controller) -> None:
    ctl.reconcile(wl(NEW), Role.PREVIEW)
    ctl.promote("web")  # an older blue-green release whose finalize never ran
    champion = Champion(now="1", version="3", before="1")
    done = settle(ctl, "web", "cccc-000003", champion.side)
    assert done.serving == "old" and done.notes == () and champion.moves == []
    assert ctl.state("web").previous is not None


def test_settle_retries_until_the_target_answers(ctl: Controller) -> None:
    calls: list[float] = []

    class Flaky:
        def __init__(self) -> None:
            self.left = 1

        def state(self, service: str) -> Any:
            if self.left:
                self.left -= 1
                raise OSError("HAProxy's socket is gone")
            return ctl.state(service)

        def rollback(self, service: str) -> Any:
            return ctl.rollback(service)

    ctl.reconcile(wl(NEW), Role.CANARY)
    done = settle(Flaky(), "web", NEW, sleep=calls.append)
    assert done.serving == "old" and calls == [2.0]
    assert "try 1/3" in done.notes[0] and "HAProxy's socket is gone" in done.notes[0]


def test_settle_says_unknown_when_it_never_gets_an_answer() -> None:
    class Down:
        def state(self, service: str) -> Any:
            raise OSError("no route")

        def rollback(self, service: str) -> Any:
            raise AssertionError("not reached")

    done = settle(Down(), "web", NEW, sleep=lambda _: None)
    assert done.serving == "unknown" and len(done.notes) == 3


def test_finalize_failures_are_a_note_not_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.deploy

    tries: list[str] = []

    def broken(target: str, service: str, settings: Any) -> None:
        tries.append(service)
        raise OSError("engine timed out")

    monkeypatch.setattr(tasks.deploy, "finalize_task", broken)
    note = rel.finalize_release("local", "web", Any, sleep=lambda _: None)  # type: ignore[arg-type]
    assert tries == ["web"] * 3
    assert "finalize failed 3 times (OSError: engine timed out)" in note
