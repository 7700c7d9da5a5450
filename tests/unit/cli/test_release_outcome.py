"""`suite release --wait` reads a release's outcome from its run's final state when the
release record does not say it: a rolled-back release (COMPLETED, named RolledBack) exits 1."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from suite.cli.commands import release as cmd
from suite.settings import Settings, load


@pytest.mark.parametrize(("state", "outcome"), [
    ({"type": "COMPLETED", "name": "Completed"}, "promoted"),
    ({"type": "COMPLETED", "name": "RolledBack"}, "rolled_back"),
    ({"type": "FAILED", "name": "Failed"}, "failed"),
    ({"type": "CRASHED", "name": "Crashed"}, "failed"),
    ({"type": "CANCELLED", "name": "Cancelled"}, "failed"),
])
def test_outcome_of_a_final_state(state: dict[str, str], outcome: str) -> None:
    assert cmd.outcome_of_state(state) == outcome


def test_release_wait_exits_1_for_a_rolled_back_run(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    settings: Settings = load()
    monkeypatch.setattr(cmd.settings_mod, "load", lambda: settings)
    monkeypatch.setattr(cmd, "start", lambda *a: "run-1")
    monkeypatch.setattr(cmd, "_run_state", lambda api, run_id: {
        "state": {"type": "COMPLETED", "name": "RolledBack", "message": "step 3 FAIL"}})
    args: Any = argparse.Namespace(name="web", sha="", triggered_by="t", wait=True, json=True,
                                   strategy="")
    assert cmd.cmd_release(args) == 1
