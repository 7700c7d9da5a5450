"""The webhook HTTP server: ``POST /hooks/{github,gitlab,gitea}``, ``GET /healthz``.

Order of checks, so that nothing unauthenticated can start a run or poison the replay log:
size limit → signature (secret from Vault) → event type → delivery id → payload → registry
(the repository's registered services, read at each request: services are added while the server
runs; none → 403) → branch filter (each service's registered branch) → age (the payload's push
time within ``max_age``, not more than ``max_skew`` ahead; no usable time → 403) → replay claim
→ trigger.

A repository may host several services: each one on the pushed branch gets its own run. The
replay log holds ``provider:delivery:service``, so a delivery answered 502 because one service's
run could not be started is accepted again on redelivery for that service only, while the runs
it did start are not started twice; a delivery whose every service was claimed is a replay (409).
Each service is also claimed under ``commit:<repository>:<sha>:<service>``: a second delivery id
for the same commit (a forged or re-sent delivery with a fresh id) is a replay too.

The HTTP server runs at most ``workers`` handlers at once and gives each socket ``timeout``
seconds of silence (:class:`BoundedServer`). When every handler is taken, a new connection
sheds the oldest one still waiting for its first byte: idle sockets cannot keep a real request
from its answer.

Nothing is done without its record: a push is audited (``webhook.push``) before any delivery is
claimed or run started, and every refusal is audited before it is answered. When the audit trail
cannot record (Vault sealed or down, the signing key missing, the disk full) the answer is 503,
nothing is claimed or started, and the forge's redelivery is accepted once it can. A replay log
that cannot be written is a 503 too. Only the ``webhook.trigger`` record after a run has started
cannot stop that run: if it fails, the 202 says so under ``unrecorded`` (the run's own
``release.start`` record is required by the release flow).

Answers are JSON; 202 lists one entry per service with its flow run id (deployment mode) or the
id of its emitted ``git.push`` event and the automations that react to it (event mode).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from suite.errors import SuiteError
from suite.services.registry import Registration
from suite.webhook import routing
from suite.webhook.replay import DeliveryLog
from suite.webhook.trigger import Started
from suite.webhook.verify import (
    PROVIDERS,
    PushEvent,
    Rejected,
    branch_allowed,
    check_age,
    check_signature,
    delivery_id,
    event_type,
    is_push,
    parse_push,
)

Trigger = Callable[[PushEvent, str], Started]  # (the push, the service it releases)
Registrations = Callable[[], Sequence[Registration]]
SecretSource = Callable[[str], str]
Audit = Callable[[str, str, str, dict[str, Any]], None]

MAX_BODY = 1 << 20
WORKERS = 8  # concurrent handler threads
SOCKET_TIMEOUT = 10.0  # seconds a client may stay silent


class Unrecorded(Exception):
    """The audit trail could not record what the receiver was about to do: answer 503."""


@dataclass
class WebhookApp:
    secrets: SecretSource  # provider -> shared secret (read from Vault)
    trigger: Trigger
    deliveries: DeliveryLog
    registrations: Registrations  # read at each request (``Registry(settings).all``)
    #: optional extra restriction on top of each service's registered branch (globs)
    branches: Sequence[str] = ()
    max_body: int = MAX_BODY
    audit: Audit | None = None
    secret_ttl: float = 60.0
    #: a push older than this (seconds, by its payload's timestamp) is refused; None: no check
    max_age: float | None = None
    max_skew: float = 300.0  # how far in the future a push may be dated (clock skew)
    clock: Callable[[], float] = time.time
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
            try:
                return self._handle(provider, headers, body)
            except Rejected as rej:
                self._audit("webhook.rejected", provider, "rejected", {"reason": rej.reason})
                return rej.status, {"error": rej.reason}
        except Unrecorded as exc:
            return 503, {"error": str(exc)}

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
        try:
            matched = routing.registered(event, self.registrations())
        except (SuiteError, OSError) as exc:
            return 503, {"error": f"service registry unreadable: {exc}"}
        if not matched:
            refusal = routing.unregistered(event)
            self._audit("webhook.refused", event.repository, "refused",
                        {"urls": list(event.urls), "branch": event.branch})
            return 403, refusal
        reason = branch_allowed(event, self.branches)
        if reason:
            self._audit("webhook.ignored", event.repository, "ignored", {"reason": reason})
            return 200, {"status": "ignored", "reason": reason,
                         "services": [r.service for r in matched]}
        plan = routing.route(event, matched)
        if not plan.start:
            self._audit("webhook.ignored", event.repository, "ignored", {"reason": plan.reason})
            return 200, {"status": "ignored", "reason": plan.reason,
                         "services": [r.service for r in matched]}
        if self.max_age is not None:
            check_age(event, self.clock(), self.max_age, self.max_skew)
        self._audit("webhook.push", f"{event.repository}@{event.branch}", "accepted",
                    {"sha": event.after, "delivery": event.delivery,
                     "services": [r.service for r in plan.start]})
        return self._start(event, plan)

    def _start(self, event: PushEvent, plan: routing.Route) -> tuple[int, dict]:
        runs: list[dict[str, Any]] = []
        failed: list[dict[str, str]] = []
        replayed: list[str] = []
        unrecorded: list[str] = []
        unwritable: list[str] = []  # services whose replay claim could not be written
        for reg in plan.start:
            key = f"{event.provider}:{event.delivery}:{reg.service}"
            commit = f"commit:{routing.identity(reg.repository)}:{event.after}:{reg.service}"
            claimed = False
            try:
                claimed = self.deliveries.claim(key)
                if claimed and not self.deliveries.claim(commit):
                    self.deliveries.release(key)  # another delivery id already released it
                    claimed = False
            except SuiteError as exc:  # StorageError: the replay log cannot be written
                if claimed:  # do not leave the delivery claimed: its redelivery must be taken
                    try:
                        self.deliveries.release(key)
                    except SuiteError:
                        pass
                failed.append({"service": reg.service, "error": str(exc)})
                unwritable.append(reg.service)
                continue
            if not claimed:
                replayed.append(reg.service)
                continue
            try:
                started = self.trigger(event, reg.service)
            except SuiteError as exc:
                self.deliveries.release(commit)
                self.deliveries.release(key)
                self._audit_after("webhook.trigger", f"{reg.service}@{event.branch}", "error",
                                  {"error": str(exc), "repository": event.repository},
                                  unrecorded)
                failed.append({"service": reg.service, "error": str(exc)})
                continue
            answer = {"service": reg.service, **started.answer()}
            self._audit_after("webhook.trigger", f"{reg.service}@{event.branch}",
                              answer["status"],
                              {"sha": event.after, "delivery": event.delivery,
                               "repository": event.repository,
                               "run": started.flow_run_id or None,
                               "event": started.event_id or None}, unrecorded)
            runs.append(answer)
        summary = {"repository": event.repository, "git_sha": event.after,
                   "branch": event.branch, "runs": runs,
                   "ignored": [{"service": s, "reason": r} for s, r in plan.ignored]}
        if replayed:
            summary["replayed"] = replayed
        if unrecorded:
            summary["unrecorded"] = unrecorded
        if failed and not runs and len(unwritable) == len(failed):
            return 503, {"error": "; ".join(f"{f['service']}: {f['error']}" for f in failed),
                         "failed": failed, **summary}
        if failed:
            return 502, {"error": "; ".join(f"{f['service']}: {f['error']}" for f in failed),
                         "failed": failed, **summary}
        if not runs:
            raise Rejected(409, f"delivery {event.delivery} (commit {event.after} of "
                                f"{event.repository}) was already received (replay refused; "
                                f"services: {', '.join(replayed)})")
        statuses = {r["status"] for r in runs}
        return 202, {"status": statuses.pop() if len(statuses) == 1 else "started", **summary}

    def _audit(self, action: str, subject: str, outcome: str, inputs: dict[str, Any]) -> None:
        """Record before acting; :class:`Unrecorded` (answered 503) when the trail cannot."""
        if self.audit is None:
            return
        try:
            self.audit(action, subject, outcome, inputs)
        except SuiteError as exc:
            raise Unrecorded(
                f"the audit trail cannot record {action} for {subject} ({exc}); nothing was "
                f"started or claimed: the delivery is accepted again once the trail can record "
                f"(forges redeliver on 5xx)"
            ) from exc

    def _audit_after(self, action: str, subject: str, outcome: str, inputs: dict[str, Any],
                     unrecorded: list[str]) -> None:
        """Record what already happened (a run started): a failure cannot undo it, so it is
        reported in the answer and on stderr instead of being dropped."""
        try:
            self._audit(action, subject, outcome, inputs)
        except Unrecorded as exc:
            unrecorded.append(f"{action} {subject}: {exc.__cause__}")
            print(f"webhook: {action} {subject} not recorded: {exc.__cause__}", file=sys.stderr,
                  flush=True)


class BoundedServer(ThreadingHTTPServer):
    """At most ``workers`` handler threads. A connection over the bound first sheds the oldest
    handler still waiting for its request's first byte (an idle socket), then waits in the
    accept loop (the listen backlog queues the rest) for up to ``timeout`` seconds, then is
    closed: idle sockets can neither make the server spawn threads without bound nor keep a
    client that sends its request from an answer. Each handler's socket has the same timeout,
    so a client that sends nothing, or stalls mid-request, is cut."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 workers: int, timeout: float) -> None:
        super().__init__(address, handler)
        self.workers = workers
        self.socket_timeout = timeout
        self._slots = threading.BoundedSemaphore(workers)
        # accepted connections with no byte of a request yet (insertion order = oldest first),
        # and the ones shed for a newer connection
        self._idle: dict[socket.socket, None] = {}
        self._cut: set[socket.socket] = set()
        self._idle_lock = threading.Lock()

    def await_first_byte(self, conn: socket.socket) -> bool:
        """Block until the connection has a byte to read (True), or is closed, cut by the
        socket timeout or shed for a newer connection (False). Only a connection with nothing
        to read is ever shed: a request being sent, read or answered is never cut short."""
        with self._idle_lock:
            if conn not in self._cut:
                self._idle.setdefault(conn)
        try:
            ready = bool(conn.recv(1, socket.MSG_PEEK))
        except OSError:  # TimeoutError included
            ready = False
        with self._idle_lock:
            self._idle.pop(conn, None)
            if conn in self._cut:
                self._cut.discard(conn)
                return False
        return ready

    def _shed_oldest_idle(self) -> bool:
        with self._idle_lock:
            for conn in list(self._idle):
                del self._idle[conn]
                if _readable(conn):  # its request (or its close) has arrived: not idle
                    continue
                self._cut.add(conn)
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # wakes its handler's recv with b""
                except OSError:
                    pass
                return True
        return False

    def process_request(self, request: Any, client_address: Any) -> None:
        acquired = self._slots.acquire(blocking=False)
        if not acquired:
            if self._shed_oldest_idle():
                print(f"webhook {client_address[0]}: all {self.workers} handlers busy; the "
                      f"oldest idle connection was closed for this one", file=sys.stderr,
                      flush=True)
            acquired = self._slots.acquire(timeout=self.socket_timeout)
        if not acquired:
            print(f"webhook {client_address[0]}: all {self.workers} handlers busy for "
                  f"{self.socket_timeout:.0f} s; connection closed", file=sys.stderr, flush=True)
            self.shutdown_request(request)
            return
        with self._idle_lock:
            self._idle[request] = None  # idle from its accept until its first byte is read
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._idle_lock:
                self._idle.pop(request, None)
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._idle_lock:
                self._idle.pop(request, None)
                self._cut.discard(request)
            self._slots.release()


def _readable(conn: socket.socket) -> bool:
    """Whether the connection has bytes (or its close) to read right now, without waiting."""
    poller = select.poll()
    try:
        poller.register(conn, select.POLLIN)
    except (OSError, ValueError):  # already closed
        return True
    return bool(poller.poll(0))


def make_server(app: WebhookApp, host: str, port: int, workers: int = WORKERS,
                timeout: float = SOCKET_TIMEOUT) -> BoundedServer:
    limit = timeout

    class Handler(BaseHTTPRequestHandler):
        server_version = "suite-webhook"
        timeout = limit  # StreamRequestHandler.setup sets it on the socket

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_one_request(self) -> None:
            # idle (no byte of a request yet) is the only state in which a handler is shed
            if not self.server.await_first_byte(self.connection):  # type: ignore[attr-defined]
                self.close_connection = True
                return
            super().handle_one_request()

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
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                self.log_message("body not received within %s s; connection closed", timeout)
                return
            if len(body) < length:
                self.close_connection = True
                self._send(400, {"error": f"body ended after {len(body)} of the {length} bytes "
                                          f"its Content-Length announced"})
                return
            try:
                status, answer = app.handle(parts[1], dict(self.headers.items()), body)
            except Exception as exc:  # a bug must still answer, never leave the forge hanging
                print(f"webhook: handler error {type(exc).__name__}: {exc}", file=sys.stderr,
                      flush=True)
                status, answer = 500, {"error": f"internal error ({type(exc).__name__})"}
            self._send(status, answer)

        def log_message(self, fmt: str, *args: object) -> None:
            # request lines only: never headers or bodies (they carry signatures/tokens)
            print(f"webhook {self.address_string()} {fmt % args}", flush=True)

    return BoundedServer((host, port), Handler, workers, timeout)
