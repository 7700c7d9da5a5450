"""`suite up` / `suite down` when the audit trail cannot record: exit 1 naming --without-audit
(down stops nothing, up registers no deployments); with the flag, a warning and the command goes
on. The platform itself is replaced by recorders: this is about the command's decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite import audit, cli, deployments
from suite.errors import AuditError
from suite.platform import manager
from suite.platform.service import Status


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []
    monkeypatch.setenv("SUITE_HOME", str(tmp_path / "home"))

    def cannot_sign(*args: object, **kwargs: object) -> None:
        raise AuditError("signing the audit record with transit key 'suite-sign' failed "
                         "(ConnectionError); is Vault up and unsealed?")

    monkeypatch.setattr(audit, "append", cannot_sign)
    monkeypatch.setattr(manager, "status", lambda s: [Status("prefect", "", 1, True, True)])

    def down(settings: object, only: object = None, report: object = None) -> list[str]:
        done.append("down")
        return ["prefect"]

    def up(settings: object, only: object = None, report: object = None) -> manager.UpResult:
        done.append("up")
        return manager.UpResult(started=["prefect"])

    def deploy(settings: object, force: bool = False) -> bool:
        done.append("deploy")
        return True

    monkeypatch.setattr(manager, "down", down)
    monkeypatch.setattr(manager, "up", up)
    monkeypatch.setattr(deployments, "deploy", deploy)
    monkeypatch.setattr("suite.cli.commands.platform._stop_releases", lambda s, abort: True)
    monkeypatch.setattr("suite.cli.commands.platform._crash_recovery", lambda s: True)
    return done


def test_down_that_cannot_be_recorded_stops_nothing_and_names_the_flag(calls, capsys):
    assert cli.main(["down"]) == 1
    err = capsys.readouterr().err
    assert "platform.down could not be recorded" in err and "nothing was stopped" in err
    assert "--without-audit" in err and "transit key 'suite-sign'" in err
    assert calls == []


def test_down_without_audit_warns_and_stops(calls, capsys):
    assert cli.main(["down", "--without-audit"]) == 0
    assert "warning: audit event platform.down not recorded" in capsys.readouterr().err
    assert calls == ["down"]


def test_up_that_cannot_be_recorded_exits_1_and_registers_no_deployments(calls, capsys):
    assert cli.main(["up"]) == 1
    err = capsys.readouterr().err
    assert "platform.up could not be recorded" in err and "--without-audit" in err
    assert "deployments were not registered" in err
    assert calls == ["up"]


def test_up_without_audit_warns_and_goes_on(calls, capsys):
    assert cli.main(["up", "--without-audit"]) == 0
    assert "warning: audit event platform.up not recorded" in capsys.readouterr().err
    assert calls == ["up", "deploy"]
