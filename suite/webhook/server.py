"""The webhook HTTP server: ``POST /hooks/{github,gitlab,gitea}``, ``GET /healthz``.

Order of checks, so that nothing unauthenticated can start a run or poison the replay log:
size limit → signature (secret from Vault) → event type → delivery id (replay) → payload →
branch filter → trigger. Answers are JSON; 202 carries the flow run id (deployment mode) or
the id of the emitted ``git.push`` event and the automations that react to it (event mode).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from suite.errors import SuiteError
from suite.webhook.replay import DeliveryLog
from suite.webhook.trigger import Started
from suite.webhook.verify import (
    PROVIDERS,
    PushEvent,
    Rejected,
    branch_allowed,
    check_signature,
    delivery_id,
    event_type,
    is_push,
    parse_push,
)

Trigger = Callable[[PushEvent], Started]
SecretSource = Callable[[str], str]
Audit = Callable[[str, str, str, dict[str, Any]], None]

MAX_BODY = 1 << 20


@dataclass
class WebhookApp:
    secrets: SecretSource  # provider -> shared secret (read from Vault)
    trigger: Trigger
    deliveries: DeliveryLog
    branches: Sequence[str] = ()
    max_body: int = MAX_BODY
    audit: Audit | None = None
    secret_ttl: float = 60.0
    _cache: dict[str, tuple[float, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def secret(self, provider: str) -> str:
        with self._lock:
            hit = self._cache.get(provider)
            if hit and time.monotonic() - hit[0] < self.secret_ttl:
                return hit[1]
        value = self.secrets(provider)
        with self._lock:
            self._cache[provider] = (time.monotonic(), value)
        return value

    def handle(self, provider: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        try:
            return self._handle(provider, headers, body)
        except Rejected as rej:
            self._audit("webhook.rejected", provider, "rejected", {"reason": rej.reason})
            return rej.status, {"error": rej.reason}

    def _handle(self, provider: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        if provider not in PROVIDERS:
            raise Rejected(404, f"unknown hook {provider!r} (use /hooks/{{{','.join(PROVIDERS)}}})")
        try:
            secret = self.secret(provider)
        except SuiteError as exc:
            return 503, {"error": f"webhook secret unavailable: {exc}"}
        check_signature(provider, headers, body, secret)
        if event_type(provider, headers) == "ping":
            return 200, {"status": "pong"}
        if not is_push(provider, headers):
            return 200, {"status": "ignored",
                         "reason": f"event {event_type(provider, headers)!r} is not a push"}
        delivery = delivery_id(provider, headers)
        event = parse_push(provider, delivery, body)
        if not self.deliveries.claim(f"{provider}:{delivery}"):
            raise Rejected(409, f"delivery {delivery} was already received (replay refused)")
        reason = branch_allowed(event, self.branches)
        if reason:
            self._audit("webhook.ignored", event.repository, "ignored", {"reason": reason})
            return 200, {"status": "ignored", "reason": reason}
        try:
            started = self.trigger(event)
        except SuiteError as exc:
            self.deliveries.release(f"{provider}:{delivery}")
            self._audit("webhook.trigger", event.repository, "error", {"error": str(exc)})
            return 502, {"error": str(exc)}
        answer = started.answer()
        self._audit("webhook.trigger", f"{event.repository}@{event.branch}", answer["status"],
                    {"sha": event.after, "delivery": delivery,
                     "run": started.flow_run_id or None, "event": started.event_id or None})
        return 202, {**answer, "git_sha": event.after, "branch": event.branch}

    def _audit(self, action: str, subject: str, outcome: str, inputs: dict[str, Any]) -> None:
        if self.audit is not None:
            try:
                self.audit(action, subject, outcome, inputs)
            except SuiteError:
                pass


def make_server(app: WebhookApp, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "suite-webhook"

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "hooks":
                self._send(404, {"error": f"no route {self.path} (POST /hooks/<provider>)"})
                return
            raw = self.headers.get("Content-Length")
            if raw is None or not raw.isdigit():
                self._send(411, {"error": "Content-Length required"})
                return
            length = int(raw)
            if length > app.max_body:
                self.close_connection = True
                self._send(413, {"error": f"body of {length} bytes exceeds the limit of "
                                          f"{app.max_body} bytes"})
                return
            body = self.rfile.read(length)
            status, answer = app.handle(parts[1], dict(self.headers.items()), body)
            self._send(status, answer)

        def log_message(self, fmt: str, *args: object) -> None:
            # request lines only: never headers or bodies (they carry signatures/tokens)
            print(f"webhook {self.address_string()} {fmt % args}", flush=True)

    return ThreadingHTTPServer((host, port), Handler)
