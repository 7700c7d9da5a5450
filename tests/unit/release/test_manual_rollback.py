"""A manual run of the ``rollback`` flow is an abort: without an approver's identity token it
changes nothing and says what is missing; with one, its records name the verified approver."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import flows.rollback as flow_mod
import tasks.release as release_mod
from suite.errors import ConfigError
from suite.people import Checked


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"rollback": [], "audit": [], "model": []}

    def verify(token: str | None) -> Checked:
        if token == "jwt-of-carol":
            return Checked("userpass:carol", "approver userpass:carol")
        return Checked(None, f"Vault refused {token!r}")

    monkeypatch.setattr(release_mod, "approval_checker", lambda settings: verify)
    monkeypatch.setattr(flow_mod, "check_override_task", release_mod.check_override_task.fn)
    monkeypatch.setattr(flow_mod.settings_mod, "load", lambda: SimpleNamespace())
    monkeypatch.setattr(flow_mod, "rollback_task", lambda target, service, settings: (
        seen["rollback"].append(service) or SimpleNamespace(stable=SimpleNamespace(version="v1"))))
    monkeypatch.setattr(flow_mod, "rollback_model_task", lambda s, name, reason, actor: (
        seen["model"].append(actor) or "v2 -> v1"))
    monkeypatch.setattr(flow_mod, "audit_task", lambda s, action, subject, inputs, actor=None: (
        seen["audit"].append((action, actor))))
    return seen


@pytest.mark.parametrize("token", ["", "forged", "alice"])
def test_a_manual_rollback_without_an_approvers_token_changes_nothing(calls, token) -> None:
    with pytest.raises(ConfigError, match="a manual rollback of web needs an approver"):
        flow_mod.rollback.fn(service="web", model_name="m", approval_token=token)
    assert calls == {"rollback": [], "audit": [], "model": []}


def test_the_records_of_a_manual_rollback_name_the_verified_approver(calls) -> None:
    out = flow_mod.rollback.fn(service="web", model_name="m", approval_token="jwt-of-carol")
    assert out["stable"] == "v1" and out["champion"] == "v2 -> v1"
    assert calls["rollback"] == ["web"]
    assert calls["model"] == ["userpass:carol"]
    assert calls["audit"] == [("release.rollback", "userpass:carol")]
