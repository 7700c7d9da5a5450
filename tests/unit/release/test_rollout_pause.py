"""Pauses and the commands a person sends: promote ends an indefinite pause (the later steps
still run) or skips the remaining steps during a timed one; abort rolls back."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.services.spec import Strategy, StrategyKind
from suite.settings import Settings
from tasks import rollout
from tasks.control import Active, Command, Releases
from tasks.report import ReleaseRecord
from tasks.targets.base import Workload


@pytest.fixture
def ro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rollout.Rollout:
    monkeypatch.setattr(rollout, "audit_task", lambda *a, **k: 0)
    settings = Settings(home=tmp_path, ports={})
    Releases(settings).start(Active("web", "r1", "run", "canary", "now"))
    from suite.services.spec import ServiceSpec

    spec = ServiceSpec(service="web", port=8080, readiness="/", strategy=Strategy(
        StrategyKind.CANARY))
    wl = Workload(service="web", release="r1", version="v", image="i")
    return rollout.Rollout(ReleaseRecord("r1", "web", "canary", "local"), settings, "local",
                           spec, wl, {})


def sending(ro: rollout.Rollout, command: Command) -> list[float]:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            Releases(ro.settings).send("web", command, "ada", "why")

    object.__setattr__(ro, "sleep", sleep)
    return slept


def test_promote_ends_an_indefinite_pause_and_the_steps_go_on(ro: rollout.Rollout) -> None:
    slept = sending(ro, Command.PROMOTE)
    assert rollout._pause(ro, 2, None) is False
    assert len(slept) == 3
    assert Releases(ro.settings).active("web").phase == "running"  # type: ignore[union-attr]


def test_promote_during_a_timed_pause_skips_the_remaining_steps(ro: rollout.Rollout) -> None:
    sending(ro, Command.PROMOTE)
    assert rollout._pause(ro, 2, 3600) is True


def test_abort_during_a_pause_rolls_back(ro: rollout.Rollout) -> None:
    sending(ro, Command.ABORT)
    with pytest.raises(rollout.RolledBack, match="aborted by ada: why"):
        rollout._pause(ro, 2, None)
