"""No record, no action: when the audit trail cannot record, the receiver answers 503, starts and
claims nothing, and the forge's redelivery is accepted once the trail records again. A replay log
on a full disk is a 503 too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from suite.errors import AuditError
from suite.services.registry import Registry
from suite.webhook.replay import DeliveryLog
from suite.webhook.server import WebhookApp
from tests.unit.webhook.repos import register, temp_registry
from tests.unit.webhook.test_server import SECRET, Recorder, github


class Trail:
    """An audit callable that records, or fails as Vault does when it cannot sign."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []
        self.down = False

    def __call__(self, action: str, subject: str, outcome: str, inputs: dict[str, Any]) -> None:
        if self.down:
            raise AuditError("signing the audit record with transit key 'suite-sign' failed "
                             "(Forbidden); is Vault up and unsealed?")
        self.records.append((action, subject, outcome))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return temp_registry(tmp_path / "home")


@pytest.fixture
def trail() -> Trail:
    return Trail()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(tmp_path: Path, registry: Registry, recorder: Recorder, trail: Trail) -> WebhookApp:
    return WebhookApp(secrets=lambda _: SECRET, trigger=recorder,
                      deliveries=DeliveryLog(tmp_path / "deliveries.json"),
                      registrations=registry.all, audit=trail)


def test_a_push_is_recorded_before_its_run_starts(app, registry, recorder, trail, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    status, _ = github(app, f"file://{tmp_path}/svc", delivery="gh-1")
    assert status == 202 and recorder.services == ["httpbin"]
    assert [a for a, _, _ in trail.records] == ["webhook.push", "webhook.trigger"]


def test_a_push_vault_cannot_sign_is_503_starts_nothing_and_its_redelivery_is_accepted(
        app, registry, recorder, trail, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    trail.down = True
    status, answer = github(app, f"file://{tmp_path}/svc", delivery="gh-2")
    assert status == 503
    assert "cannot record webhook.push" in answer["error"]
    assert "transit key 'suite-sign'" in answer["error"]
    assert recorder.services == []
    trail.down = False  # Vault is back: the forge redelivers the same delivery
    status, answer = github(app, f"file://{tmp_path}/svc", delivery="gh-2")
    assert status == 202, answer
    assert recorder.services == ["httpbin"]


def test_a_rejection_that_cannot_be_recorded_is_503(app, trail):
    trail.down = True
    body = b"{}"
    status, answer = app.handle("github", {"X-GitHub-Event": "push",
                                           "X-Hub-Signature-256": "sha256=" + "0" * 64}, body)
    assert status == 503 and "cannot record webhook.rejected" in answer["error"]


def test_a_run_started_whose_trigger_record_fails_says_so_in_the_answer(
        app, registry, recorder, trail, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    real = trail.__call__

    def flaky(action: str, subject: str, outcome: str, inputs: dict[str, Any]) -> None:
        if action == "webhook.trigger":
            raise AuditError("Vault sealed")
        real(action, subject, outcome, inputs)

    app.audit = flaky
    status, answer = github(app, f"file://{tmp_path}/svc", delivery="gh-3")
    assert status == 202 and recorder.services == ["httpbin"]
    assert answer["unrecorded"] and "Vault sealed" in answer["unrecorded"][0]


def test_a_replay_store_it_cannot_use_is_503_and_starts_nothing(
        app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    app.deliveries.path.write_bytes(b"not a database " * 100)
    status, answer = github(app, f"file://{tmp_path}/svc", delivery="gh-4")
    assert status == 503
    assert f"replay store {app.deliveries.path} failed" in answer["error"]
    assert "move it aside" in answer["error"]
    assert recorder.services == []


def test_a_commit_claim_that_cannot_be_written_leaves_the_delivery_unclaimed(
        app, registry, recorder, tmp_path):
    from suite.errors import StorageError

    register(registry, tmp_path / "svc", "httpbin")
    real = app.deliveries.claim
    broken = {"on": True}

    def claim(key: str) -> bool:
        if key.startswith("commit:") and broken["on"]:
            raise StorageError("disk I/O error")
        return real(key)

    app.deliveries.claim = claim  # type: ignore[method-assign]
    assert github(app, f"file://{tmp_path}/svc", delivery="gh-9")[0] == 503
    broken["on"] = False
    assert github(app, f"file://{tmp_path}/svc", delivery="gh-9")[0] == 202  # the redelivery
    assert recorder.services == ["httpbin"]
