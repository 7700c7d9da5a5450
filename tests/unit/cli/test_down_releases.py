"""`suite down` while a release runs: refused (exit 1) naming it, nothing stopped; with
--abort-releases each is rolled back first. The platform is replaced by recorders; the release's
intent is real (written by this process, which is alive)."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite import cli
from suite.platform import manager
from suite.platform.service import Status
from suite.settings import load
from tasks import reconcile
from tasks.control import Active, Releases


@pytest.fixture
def stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    done: list[str] = []
    monkeypatch.setenv("SUITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SUITE_PREFECT_PORT", "9")  # nothing answers: the pid decides
    monkeypatch.setattr(manager, "status", lambda s: [Status("prefect", "", 1, True, True)])
    def down(settings: object, only: object = None, report: object = None) -> list[str]:
        done.append("down")
        return ["prefect"]

    monkeypatch.setattr(manager, "down", down)
    monkeypatch.setattr("suite.cli.commands.platform._audit", lambda *a, **k: None)
    Releases(load()).start(Active("web", "r-7", "run-7", "canary", "now", phase="paused"))
    return done


def test_down_during_a_release_refuses_and_names_it(stopped: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["down"]) == 1
    err = capsys.readouterr().err
    assert "web (release r-7, run run-7, paused)" in err and "--abort-releases" in err
    assert stopped == []


def test_down_abort_releases_rolls_each_back_then_stops(
        stopped: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    aborted: list[str] = []

    def abort(settings: object, service: str, actor: str, why: str) -> str:
        aborted.append(service)
        return f"{service}: aborted"

    monkeypatch.setattr(reconcile, "abort_release", abort)
    assert cli.main(["down", "--abort-releases"]) == 0
    assert aborted == ["web"] and stopped == ["down"]
