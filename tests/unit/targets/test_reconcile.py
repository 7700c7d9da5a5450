"""The reconciler against fakes of the controller's adapters: an unfinished release whose run
is gone goes back to stable (route, state, Active record, audit), a live one is left alone."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from suite.settings import Settings
from tasks import reconcile as rec
from tasks.control import Active, Releases
from tasks.targets.base import Role
from tasks.targets.controller import Controller
from tasks.targets.state import FileStore, Intent, TargetState
from tests.unit.targets.test_controller import FakeDiscovery, FakeRouter, FakeRunner, wl


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    monkeypatch.setattr(rec.audit, "append", lambda settings, **kw: records.append(kw))
    return records


@pytest.fixture
def ctl(settings: Settings) -> tuple[Controller, FakeRunner, FakeRouter]:
    log: list[str] = []
    runner, router = FakeRunner(log), FakeRouter(log)
    store = FileStore(settings.dir("targets", "local"))
    return Controller(store, runner, router, FakeDiscovery(), pause=lambda _: None), runner, router


def _canary_at_50(settings: Settings, ctl: Controller) -> Intent:
    """stable 2 replicas, a release started in "this" process with its canary at 50 %."""
    ctl.reconcile(wl("aaaa-000001"), Role.STABLE)
    releases = Releases(settings)
    releases.start(Active("web", "bbbb-000002", "run-2", "canary", "2026-12-02T02:00:00+00:00"))
    ctl.reconcile(wl("bbbb-000002", replicas=1), Role.CANARY)
    ctl.set_weights("web", 50)
    intent = ctl.state("web").release
    assert intent is not None
    return intent


def test_a_release_writes_its_intent_and_clears_it_when_it_ends(settings: Settings) -> None:
    releases = Releases(settings)
    releases.start(Active("web", "r1", "run-1", "canary", "now"))
    store = releases.targets()
    intent = store.load("web").release
    assert intent is not None and (intent.release, intent.flow_run_id) == ("r1", "run-1")
    assert intent.pid == os.getpid() and intent.pid_started > 0
    assert releases.active("web").pid == os.getpid()  # type: ignore[union-attr]
    releases.update("web", phase="paused", step="2: pause")
    assert store.load("web").release.phase == "paused"  # type: ignore[union-attr]
    releases.update("web", phase="ended", outcome="promoted")
    assert store.load("web").release is None


def test_a_version_2_state_reads_as_no_release_in_progress(settings: Settings) -> None:
    store = FileStore(settings.dir("targets", "local"))
    store.save(TargetState("web"))
    path = store.path("web")
    data = json.loads(path.read_text())
    data.pop("release")
    data["version"] = 2
    path.write_text(json.dumps(data))
    assert store.load("web").release is None
    data["version"] = 9
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"state version 9 is not one of \(2, 3\)"):
        store.load("web")


def test_a_canary_routed_during_a_release_names_it_in_the_route(settings, ctl) -> None:
    controller, _, router = ctl
    intent = _canary_at_50(settings, controller)
    assert router.routes["web"].release == intent.release


def test_an_unfinished_canary_whose_process_is_gone_is_rolled_back(settings, ctl,
                                                                   audited) -> None:
    controller, runner, router = ctl
    _canary_at_50(settings, controller)
    done = rec.reconcile(settings, "web", "suite up found it unfinished", target=controller,
                         read_run=lambda run: ("RUNNING", "Running"), alive=lambda i: False)
    assert done is not None and done.outcome == "rolled_back"
    assert "pid" in done.why and "Prefect still says Running" in done.why
    state = controller.state("web")
    assert state.canary is None and state.canary_weight == 0 and state.release is None
    assert [s.weight for s in router.routes["web"].live] == [100, 100]
    assert all(s.name.startswith("stable-") for s in router.routes["web"].live)
    assert not any("bbbb" in name for name in runner.alive)
    active = Releases(settings).active("web")
    assert active is not None and (active.phase, active.outcome) == ("ended", "rolled_back")
    assert [r["action"] for r in audited] == ["release.reconciled"]
    assert audited[0]["subject"] == "bbbb-000002 run run-2"
    assert audited[0]["outcome"] == "rolled_back"


def test_a_canary_started_but_never_saved_by_a_dead_run_is_removed(settings, ctl,
                                                                  audited) -> None:
    """The run died after its canary replica started and before the state named it: the
    reconciler removes the replica (no state would ever route or remove it) and says so."""
    controller, runner, _router = ctl
    controller.reconcile(wl("aaaa-000001"), Role.STABLE)
    Releases(settings).start(Active("web", "bbbb-000002", "run-2", "canary", "now"))
    runner.start(wl("bbbb-000002", replicas=1), "canary", 1)  # ... and the run died here
    done = rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller)
    assert done is not None and done.outcome == "rolled_back"
    assert runner.alive == {"web-aaaa-000001-stable-1", "web-aaaa-000001-stable-2"}
    assert audited[0]["inputs"]["removed_unsaved"] == ["web-bbbb-000002-canary-1"]
    assert controller.state("web").release is None


def test_the_releases_notifications_hear_of_the_reconciliation(settings, ctl, audited,
                                                              monkeypatch) -> None:
    """The run died before it could announce its end: the reconciler tells the manifest's
    notification URLs (kept in the intent) that the release was rolled back, and why."""
    from tasks import notify

    controller, _, _ = ctl
    controller.reconcile(wl("aaaa-000001"), Role.STABLE)
    Releases(settings).start(Active("web", "bbbb-000002", "run-2", "canary", "now",
                                    notify=("http://chat.invalid/hook",)))
    intent = controller.state("web").release
    assert intent is not None and intent.notify == ("http://chat.invalid/hook",)
    controller.reconcile(wl("bbbb-000002", replicas=1), Role.CANARY)
    sent: list[tuple[notify.Notice, list[str]]] = []

    def deliver(notice: notify.Notice, urls: list[str], post: object) -> list[notify.Delivery]:
        sent.append((notice, list(urls)))
        return [notify.Delivery("http://chat.invalid/…", True, "HTTP 200")]

    monkeypatch.setattr(notify, "deliver", deliver)
    done = rec.reconcile(settings, "web", "run crashed", dead_run="run-2", target=controller)
    assert done is not None and done.outcome == "rolled_back"
    assert len(sent) == 1 and sent[0][1] == ["http://chat.invalid/hook"]
    notice = sent[0][0]
    assert (notice.event, notice.release, notice.service) == (
        notify.Event.ROLLED_BACK, "bbbb-000002", "web")
    assert notice.reason.startswith("reconciled: run crashed") and "run-2" in notice.run_url


def test_a_release_whose_run_still_goes_is_left_alone(settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    assert rec.reconcile(settings, "web", "x", target=controller,
                         read_run=lambda run: ("RUNNING", "Running"),
                         alive=lambda i: True) is None
    assert controller.state("web").canary_weight == 50 and not audited


def test_a_hook_for_another_run_changes_nothing(settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    assert rec.reconcile(settings, "web", "x", dead_run="run-1", target=controller) is None
    done = rec.reconcile(settings, "web", "run crashed", dead_run="run-2", target=controller)
    assert done is not None and controller.state("web").canary is None
    # the automation comes second: nothing is left to do
    assert rec.reconcile(settings, "web", "again", dead_run="run-2", target=controller) is None
    assert len(audited) == 1


def test_stable_replicas_gone_with_the_crash_are_started_again(settings, ctl, audited) -> None:
    controller, runner, _ = ctl
    _canary_at_50(settings, controller)
    dead = controller.state("web").stable.instances[0]
    runner.alive.discard(dead.container)
    rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller)
    assert controller.problems("web") == []
    assert len(controller.state("web").stable.instances) == 2


def test_a_release_promoted_before_its_run_died_is_finished_forward(settings, ctl,
                                                                    audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    controller.promote("web")
    controller.finalize("web")  # before finalize the old stable still runs: rolled back
    done = rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller)
    assert done is not None and done.outcome == "promoted" and done.stable == "bbbb-000"
    assert controller.state("web").release is None


@pytest.mark.parametrize(("state", "alive", "expected"), [
    (("CRASHED", "Crashed"), None, "its run is Crashed"),
    (("FAILED", "RolledBack"), True, "its run is RolledBack"),
    (("DELETED", "Deleted"), None, "its run is Deleted"),
    (("RUNNING", "Running"), False, "its flow-run process (pid 7) is gone (Prefect still "
                                    "says Running)"),
    (None, False, "its flow-run process (pid 7) is gone"),
    (("RUNNING", "Running"), True, ""),
    (("PAUSED", "Paused"), None, ""),
    (None, None, ""),
])
def test_run_gone(state: tuple[str, str] | None, alive: bool | None, expected: str) -> None:
    intent = Intent("r", "run", "canary", "now", pid=7, pid_started=1.0)
    assert rec.run_gone(intent, lambda run: state, lambda i: alive) == expected


def test_the_process_of_a_reused_pid_is_not_taken_for_the_flow_run() -> None:
    intent = Intent("r", "run", "canary", "now", pid=os.getpid(), pid_started=1.0)
    assert rec.process_alive(intent) is False
    from tasks.control import process_started

    assert rec.process_alive(replace(intent, pid_started=process_started(os.getpid()))) is True
    assert rec.process_alive(replace(intent, pid=0)) is None


def test_a_release_that_ended_with_its_canary_still_there_stays_unfinished(
        settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    Releases(settings).update("web", phase="ended", outcome="failed")  # its rollback failed
    intent = controller.state("web").release
    assert intent is not None and intent.phase == "ended"
    done = rec.reconcile(settings, "web", "suite up found it unfinished", target=controller,
                         read_run=lambda run: ("FAILED", "Failed"), alive=lambda i: False)
    assert done is not None and controller.state("web").canary is None
    assert "its run is Failed" in done.why


def test_the_automation_leaves_a_run_whose_process_still_works(settings, ctl, audited) -> None:
    """Prefect may say Crashed after a late heartbeat: the process decides."""
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    assert rec.reconcile(settings, "web", "zombie?", dead_run="run-2", target=controller,
                         alive=lambda i: True, check_process=True) is None
    assert controller.state("web").canary_weight == 50 and not audited


class FakeChampion:
    """The champion alias of one model: the moves the reconciler asks for."""

    def __init__(self, now: str | None, fails: bool = False) -> None:
        self.now, self.fails, self.calls = now, fails, 0

    def __call__(self, intent: Intent, new: bool) -> str:
        self.calls += 1
        if self.fails:
            raise OSError("MLflow is down")
        if not new and self.now == intent.model_version != intent.champion_before:
            self.now = intent.champion_before
            return f"champion v{intent.model_version} -> v{intent.champion_before}"
        return ""


def _with_model(settings: Settings, version: str = "3", before: str | None = "2") -> None:
    Releases(settings).update("web", model="digits", model_version=version,
                              champion_before=before)


def test_the_intent_records_the_champion_before_the_release(settings, ctl) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    _with_model(settings)
    intent = controller.state("web").release
    assert intent is not None
    assert (intent.model, intent.model_version, intent.champion_before) == ("digits", "3", "2")


def test_a_crash_after_the_champion_moved_gives_it_back(settings, ctl, audited) -> None:
    """The run died inside the promotion unit: champion already v3, traffic not finalized."""
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    _with_model(settings)
    controller.promote("web")  # traffic moved, the old stable kept: not finalized
    champion = FakeChampion("3")
    done = rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller,
                         champion=champion)
    assert done is not None and done.outcome == "rolled_back" and done.stable == "aaaa-000"
    assert champion.now == "2" and done.champion == "champion v3 -> v2"
    assert audited[-1]["action"] == "release.reconciled"
    assert audited[-1]["inputs"]["champion"] == "champion v3 -> v2"
    assert controller.state("web").release is None


def test_a_champion_that_was_not_moved_is_left_alone(settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    _with_model(settings)
    champion = FakeChampion("2")
    done = rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller,
                         champion=champion)
    assert done is not None and champion.now == "2" and done.champion == ""


def test_a_champion_that_cannot_be_given_back_keeps_the_intent_for_the_next_try(
        settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    _with_model(settings)
    done = rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller,
                         champion=FakeChampion("3", fails=True))
    assert done is not None and "MLflow is down" in done.champion
    state = controller.state("web")
    assert state.canary is None and state.release is not None  # traffic back, champion next
    champion = FakeChampion("3")
    again = rec.reconcile(settings, "web", "suite up", target=controller, champion=champion,
                          read_run=lambda run: ("CRASHED", "Crashed"), alive=lambda i: False)
    assert again is not None and champion.now == "2"
    assert controller.state("web").release is None
    assert [r["action"] for r in audited] == ["release.reconciled"] * 2


def test_a_release_without_a_model_never_touches_a_champion(settings, ctl, audited) -> None:
    controller, _, _ = ctl
    _canary_at_50(settings, controller)
    champion = FakeChampion("3")
    rec.reconcile(settings, "web", "crash", dead_run="run-2", target=controller,
                  champion=champion)
    assert champion.calls == 0
