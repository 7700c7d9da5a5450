"""Release notifications against a real local receiver (stdlib HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from suite.settings import Settings
from tasks import notify
from tasks.notify import Event, Notice


class Receiver:
    def __init__(self, status: int = 200, hold: threading.Event | None = None) -> None:
        self.bodies: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.put((self.path, body))
                if hold is not None:
                    hold.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _notice(event: Event = Event.ROLLED_BACK) -> Notice:
    return Notice(event, "hello", "r-abc123", "rolled_back",
                  "step 3 FAIL: error rate 0.3 > 0.01", "http://127.0.0.1:4200/runs/flow-run/x",
                  time="2026-12-01T23:00:00+00:00")


class Audits:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any], str]] = []

    def __call__(self, action: str, subject: str, inputs: dict[str, Any], outcome: str) -> None:
        self.records.append((action, subject, inputs, outcome))


def test_rollback_notice_reaches_the_receiver(receiver: Receiver, tmp_path: Path) -> None:
    audits = Audits()
    results = notify.notify(Settings(home=tmp_path), [f"{receiver.url}/hooks/team"], _notice(),
                            audit=audits)
    assert [d.ok for d in results] == [True]
    path, body = receiver.bodies.get(timeout=5)
    assert path == "/hooks/team"
    assert body == {
        "schema": notify.SCHEMA, "event": "rolled_back", "service": "hello",
        "release": "r-abc123", "outcome": "rolled_back",
        "reason": "step 3 FAIL: error rate 0.3 > 0.01",
        "run_url": "http://127.0.0.1:4200/runs/flow-run/x", "time": "2026-12-01T23:00:00+00:00",
        "text": "hello release r-abc123: rolled back — step 3 FAIL: error rate 0.3 > 0.01",
    }
    assert audits.records == []


def test_each_url_gets_the_notice(tmp_path: Path) -> None:
    a, b = Receiver(), Receiver()
    try:
        results = notify.notify(Settings(home=tmp_path), [a.url + "/1", b.url + "/2"],
                                _notice(Event.WAITING_APPROVAL), audit=Audits())
        assert all(d.ok for d in results)
        assert a.bodies.get(timeout=5)[1]["event"] == "waiting_approval"
        assert b.bodies.get(timeout=5)[1]["event"] == "waiting_approval"
    finally:
        a.close()
        b.close()


def test_receiver_error_is_audited_and_never_raises(tmp_path: Path) -> None:
    bad = Receiver(status=500)
    audits = Audits()
    try:
        results = notify.notify(Settings(home=tmp_path), [bad.url + "/x?token=s3cret"],
                                _notice(), audit=audits)
    finally:
        bad.close()
    assert [(d.ok, d.detail) for d in results] == [(False, "HTTP 500")]
    ((action, subject, inputs, outcome),) = audits.records
    assert (action, subject, outcome) == ("notify.failed", "r-abc123", "failed")
    assert inputs["url"] == f"{bad.url}/…"  # the token in the URL is not kept
    assert "s3cret" not in json.dumps(audits.records)


def test_unreachable_receiver_is_a_failed_delivery(tmp_path: Path) -> None:
    gone = Receiver()
    url = gone.url
    gone.close()  # nothing listens there any more
    audits = Audits()
    good = Receiver()
    try:
        results = notify.notify(Settings(home=tmp_path), [url, good.url], _notice(),
                                audit=audits)
        assert good.bodies.get(timeout=5)  # a dead receiver does not stop the next one
    finally:
        good.close()
    assert [d.ok for d in results] == [False, True]
    assert "ConnectError" in results[0].detail
    assert len(audits.records) == 1


def test_slow_receiver_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import httpx

    monkeypatch.setattr(notify, "TIMEOUT", httpx.Timeout(0.2))
    hold = threading.Event()
    slow = Receiver(hold=hold)
    try:
        results = notify.notify(Settings(home=tmp_path), [slow.url], _notice(), audit=Audits())
    finally:
        hold.set()
        slow.close()
    assert not results[0].ok and "Timeout" in results[0].detail


def test_failing_audit_does_not_raise(tmp_path: Path) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("vault sealed")

    results = notify.notify(Settings(home=tmp_path), ["http://127.0.0.1:9/"], _notice(),
                            post=lambda u, b: 503, audit=broken)
    assert not results[0].ok


def test_no_urls_posts_nothing(tmp_path: Path) -> None:
    def never(url: str, body: dict[str, Any]) -> int:
        raise AssertionError("posted")

    assert notify.notify(Settings(home=tmp_path), [], _notice(), post=never) == []


def test_payload_carries_no_secret_or_parameter() -> None:
    assert set(_notice().payload()) == {"schema", "event", "service", "release", "outcome",
                                        "reason", "run_url", "time", "text"}


@pytest.mark.parametrize(("outcome", "event"), [("promoted", Event.PROMOTED),
                                                ("rolled_back", Event.ROLLED_BACK),
                                                ("failed", Event.FAILED),
                                                ("running", Event.FAILED)])
def test_outcome_event(outcome: str, event: Event) -> None:
    assert notify.outcome_event(outcome) is event


def test_redact_keeps_only_scheme_and_host() -> None:
    assert notify.redact("https://user:pw@hooks.slack.com/services/T0/B0/XYZ") == \
        "https://hooks.slack.com/…"


def test_task_body_counts_deliveries_and_swallows_everything(receiver: Receiver,
                                                             tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    sent = notify.notify_task.fn(settings, [receiver.url], Event.STARTED, "hello", "r-1",
                                 "running", "abc by canary")
    assert sent == 1
    assert receiver.bodies.get(timeout=5)[1]["event"] == "started"
    assert notify.notify_task.fn(settings, ["http://127.0.0.1:9/"], Event.FAILED, "hello",
                                 "r-1", "failed", "x") == 0
