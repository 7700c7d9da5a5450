"""Event mode when Prefect cannot take the event: the push is refused (502), not acknowledged and
lost, and its delivery id is forgotten so the forge's redelivery is accepted."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from suite.errors import ServiceUnavailable
from suite.webhook.replay import DeliveryLog
from suite.webhook.server import WebhookApp
from suite.webhook.trigger import EventTrigger, Started
from suite.webhook.verify import PushEvent, hmac_hex
from tests.unit.webhook.repos import register, temp_registry


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


EVENT = PushEvent(provider="github", delivery="d-1", repository="acme/svc", ref="refs/heads/main",
                  branch="main", before="a" * 40, after="b" * 40, pusher="ann", deleted=False)


def test_event_trigger_reports_an_unreachable_prefect():
    api = f"http://127.0.0.1:{closed_port()}/api"
    with pytest.raises(ServiceUnavailable, match=r"does not answer .*suite status"):
        EventTrigger(api, timeout=2)(EVENT, "svc")


def test_push_is_refused_with_502_and_redelivery_is_accepted(tmp_path: Path):
    api = f"http://127.0.0.1:{closed_port()}/api"
    registry = temp_registry(tmp_path / "home")
    register(registry, tmp_path / "svc", "svc")
    app = WebhookApp(secrets=lambda _: "s", trigger=EventTrigger(api, timeout=2),
                     deliveries=DeliveryLog(tmp_path / "deliveries.json"),
                     registrations=registry.all)
    body = json.dumps({"ref": "refs/heads/main", "after": "c" * 40,
                       "repository": {"full_name": "acme/svc",
                                      "clone_url": f"file://{tmp_path}/svc"}}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-7",
               "X-Hub-Signature-256": "sha256=" + hmac_hex("s", body)}
    status, answer = app.handle("github", headers, body)
    assert status == 502 and "does not answer" in answer["error"]
    assert answer["runs"] == [] and answer["failed"][0]["service"] == "svc"
    app.trigger = lambda _, service: Started(event_id=f"e-{service}",
                                             reactors=("release__automation_1",))
    status, answer = app.handle("github", headers, body)
    assert status == 202, answer
    assert answer == {"status": "emitted", "repository": "acme/svc", "git_sha": "c" * 40,
                      "branch": "main", "ignored": [],
                      "runs": [{"service": "svc", "status": "emitted", "event": "git.push",
                                "event_id": "e-svc", "automations": ["release__automation_1"]}]}
