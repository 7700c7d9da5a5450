"""Pauses and the commands a person sends: promote ends an indefinite pause (the later steps
still run) or skips the remaining steps during a timed one; abort rolls back."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.people import Checked
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
                           spec, wl, {}, verify=approver_of)


def approver_of(token: str | None) -> Checked:
    """Stands in for Vault: the token "ok-<name>" is <name>'s approval, any other is refused."""
    if token and token.startswith("ok-"):
        return Checked(f"userpass:{token[3:]}", "approver")
    return Checked(None, f"not an approval token: {token!r}")


def sending(ro: rollout.Rollout, command: Command, token: str = "ok-ada") -> list[float]:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            Releases(ro.settings).send("web", command, "typed-name", "why", token)

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
    with pytest.raises(rollout.RolledBack, match="aborted by userpass:ada: why"):
        rollout._pause(ro, 2, None)


class Stop(Exception):
    pass


def test_a_promote_without_an_approvers_token_is_refused_and_the_pause_goes_on(
        ro: rollout.Rollout, monkeypatch: pytest.MonkeyPatch) -> None:
    records: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(rollout, "audit_task",
                        lambda _s, action, _subj, inputs, **k: records.append((action, inputs)))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            Releases(ro.settings).send("web", Command.PROMOTE, "alice", "why", "forged")
        if len(slept) == 6:
            raise Stop

    object.__setattr__(ro, "sleep", sleep)
    with pytest.raises(Stop):
        rollout._pause(ro, 2, None)
    assert [a for a, _ in records] == ["release.promote.refused"]
    assert records[0][1]["sent_as"] == "alice"
    assert "not an approval token" in str(records[0][1]["reason"])


def test_the_recorded_promoter_is_the_tokens_identity_not_the_name_sent(
        ro: rollout.Rollout, monkeypatch: pytest.MonkeyPatch) -> None:
    actors: list[str] = []
    monkeypatch.setattr(rollout, "audit_task",
                        lambda *a, actor="", **k: actors.append(actor))
    sending(ro, Command.PROMOTE, token="ok-carol")
    assert rollout._pause(ro, 2, None) is False
    assert actors == ["userpass:carol"]


def test_the_platforms_own_abort_needs_no_token(ro: rollout.Rollout) -> None:
    sending(ro, Command.ABORT, token="")
    with pytest.raises(rollout.RolledBack, match="aborted by typed-name"):
        rollout._pause(ro, 2, None)
