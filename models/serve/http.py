"""A small HTTP/1.1 server on ``asyncio.Protocol``: what the model server needs, and no more.

Why not a framework: a one-row prediction costs ONNX Runtime about a microsecond, a general
framework's request and response objects cost a hundred (bench/RESULTS.md, "Model server"), so
they, not the model, bounded throughput. Here a request is parsed in ``data_received`` and
handed to the handler without a task per request; the handler answers a :class:`Response` at
once or a future of one (the micro-batcher's). The bytes are parsed by llhttp
(models/serve/wire.py); this module is the protocol around it.

What it speaks: HTTP/1.0 and 1.1, keep-alive, pipelining (answers in order), ``Content-Length``
and ``Transfer-Encoding: chunked`` bodies, ``Expect: 100-continue``, ``HEAD`` for ``GET`` routes;
every answer carries ``Date``. What it refuses, always with a JSON body ``{"error": code,
"detail": message}`` and then closing the connection: a malformed request line or header (400),
an HTTP/1.1 request without one ``Host`` (400), a head over ``max_head_bytes`` (431), a body over
``max_body_bytes`` (413), both ``Content-Length`` and ``Transfer-Encoding`` or either kind of
smuggling primitive llhttp knows (400), ``Transfer-Encoding`` on HTTP/1.0 (400), a transfer
coding other than chunked (400), an unknown method (405), an HTTP version other than 1.0/1.1
(400; never a 5xx for what a client sent: wire.py says why), a head not complete
within ``head_timeout_s`` or a request not complete within ``request_timeout_s`` (408).

Resources: at most ``max_connections`` connections; past half of them the idle timeout (before
the first byte of a request) shrinks toward ``min_idle_timeout_s``, and at the limit a new
connection takes the place of the longest-idle one, or is answered 503 if none is idle. A
connection holds at most its head, one body (chunks are gathered into one buffer) and the body's
copy handed to the handler: about twice ``max_body_bytes``.

Shutdown: :meth:`HttpServer.shutdown` stops accepting, closes idle keep-alive connections,
answers the requests in flight with ``Connection: close``, and waits for them up to a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

from models.serve.wire import (
    CRLF2,
    ChunkedBody,
    ProtocolError,
    Request,
    framing,
    parse_head,
)

__all__ = ["HttpServer", "Limits", "ProtocolError", "Request", "Response", "error_response",
           "json_response", "parse_head"]

log = logging.getLogger("models.serve")

JSON = "application/json"
_REASONS = {s.value: s.phrase for s in HTTPStatus}
#: after refusing a request, how long and how much of its body is read and dropped
LINGER_S = 5.0
LINGER_MAX_BYTES = 64 << 20
#: distinct request heads remembered (parsing is skipped for a head seen before)
HEAD_CACHE_SIZE = 1024
#: how often idle, slow and stalled connections are looked for
SWEEP_S = 0.25
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_head_bytes: int = 16 << 10
    #: an idle keep-alive connection is closed after this long (when connections are few)
    keepalive_timeout_s: float = 75.0
    #: the idle timeout when connections reach ``max_connections``
    min_idle_timeout_s: float = 1.0
    #: the head of a request must be complete this long after its first byte (slowloris)
    head_timeout_s: float = 10.0
    #: a request that has started arriving must be complete within this long (slow clients)
    request_timeout_s: float = 30.0
    #: open connections per process (a container allows 1024 descriptors)
    max_connections: int = 512

    @property
    def max_chunks(self) -> int:
        """Chunks in one chunked body: 64 bytes a chunk on average at the body limit."""
        return max(1024, self.max_body_bytes // 64)

    def idle_timeout(self, connections: int) -> float:
        """Up to half the connection limit the keep-alive timeout; then shorter, linearly, down
        to ``min_idle_timeout_s`` at the limit (idle sockets must not starve new clients)."""
        half = self.max_connections / 2
        if connections <= half:
            return self.keepalive_timeout_s
        share = max(0.0, (self.max_connections - connections) / half)
        low = min(self.min_idle_timeout_s, self.keepalive_timeout_s)
        return low + (self.keepalive_timeout_s - low) * share


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode())


def error_response(status: int, code: str, detail: str,
                   headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, json.dumps({"error": code, "detail": detail}).encode(),
                    headers=headers)


Handler = Callable[[Request], "Response | asyncio.Future[Response]"]


#: the fixed parts of answer heads, by (status, content type, headers, close, keep-alive 1.0)
_HeadKey = tuple[int, str, tuple[tuple[str, str], ...], bool, bool]
_HEAD_PARTS: dict[_HeadKey, tuple[bytes, bytes]] = {}


def _head_parts(status: int, response: Response, close: bool, keep_alive_1_0: bool
                ) -> tuple[bytes, bytes]:
    """What comes before the Content-Length value and after the Date line: the same few
    combinations every time, so they are encoded once (a head is then one bytes format)."""
    key = (status, response.content_type, response.headers, close, keep_alive_1_0)
    parts = _HEAD_PARTS.get(key)
    if parts is None:
        before = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
                  f"Content-Type: {response.content_type}\r\nContent-Length: ")
        after = "".join(f"{name}: {value}\r\n" for name, value in response.headers)
        if close:
            after += "Connection: close\r\n"
        elif keep_alive_1_0:  # HTTP/1.0 clients reuse the connection only when told so
            after += "Connection: keep-alive\r\n"
        parts = (before.encode("latin-1"), (after + "\r\n").encode("latin-1"))
        if len(_HEAD_PARTS) < 256:  # statuses x content types x a few headers: small
            _HEAD_PARTS[key] = parts
    return parts


def _head_bytes(status: int, response: Response, length: int, close: bool,
                keep_alive_1_0: bool = False) -> bytes:
    before, after = _head_parts(status, response, close, keep_alive_1_0)
    return b"%b%d\r\nDate: %b\r\n%b" % (before, length, _date_bytes(), after)


_date: tuple[int, str, bytes] = (0, "", b"")


def http_date() -> str:
    """The ``Date`` value (IMF-fixdate), formatted once a second."""
    return _date[1] if _date[0] == int(time.time()) else _new_date()[1]


def _date_bytes() -> bytes:
    return _date[2] if _date[0] == int(time.time()) else _new_date()[2]


def _new_date() -> tuple[int, str, bytes]:
    global _date
    now = int(time.time())
    text = formatdate(now, usegmt=True)
    _date = (now, text, text.encode("ascii"))
    return _date


@dataclass
class _Pending:
    """The request being read: its head and how its body is framed."""

    request: Request
    length: int | None
    chunked: ChunkedBody | None = None


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: _Pending | None = None
        self.busy = False
        self.closing = False
        self.processing = False
        self.write_paused = False
        self.eof = False
        self.lingering = False
        self.dropped = 0
        self.started = 0.0  # when the request being read began arriving (0: none)
        self.head_started = 0.0  # when its head began arriving (0: the head is complete)
        self.checked = 0  # bytes of an unfinished head already searched for a bare LF
        self.last_active = time.monotonic()

    # ---- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.server.admit(self):
            self.closing = True
            response = error_response(503, "too_many_connections", "the server holds "
                                      f"{len(self.server.connections)} connections (its limit)"
                                      "; retry shortly", headers=(("Retry-After", "1"),))
            self.transport.write(_head_bytes(503, response, len(response.body), True)
                                 + response.body)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.lingering:
                self.dropped += len(data)
                if self.dropped > LINGER_MAX_BYTES:
                    self.close()
            return
        if not self.reading_request:  # the first bytes of a request (a stale clock is reset)
            self.started = self.head_started = time.monotonic()
        self.buf += data
        self.process()

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.lingering:
            self.close()
            return None
        if not self.busy:
            self.close()
            return None
        return True  # half-closed: answer what is in flight, then close

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # ---- reading -------------------------------------------------------------------------------

    @property
    def reading_request(self) -> bool:
        """Part of a request has arrived, not all of it."""
        return bool(self.buf) or self.pending is not None

    def process(self) -> None:
        if self.processing:
            return
        self.processing = True
        try:
            while not self.busy and not self.closing:
                try:
                    request = self._next_request()
                except ProtocolError as exc:
                    self._refuse(exc)
                    return
                if request is None:
                    return
                self._dispatch(request)
        finally:
            self.processing = False
            if self.eof and not self.busy and not self.closing:
                self.close()  # the client half-closed: nothing more can arrive
            if self.busy and len(self.buf) > self.server.limits.max_head_bytes and \
                    self.transport is not None:
                self.transport.pause_reading()  # a pipelining client is far ahead of us

    def _next_request(self) -> Request | None:
        buf = self.buf
        if not buf and self.pending is None:  # the common case after an answer: nothing yet
            return None
        limits = self.server.limits
        if self.pending is None:
            while buf.startswith(b"\r\n"):  # an empty line before a request line is allowed
                del buf[:2]
            end = buf.find(CRLF2)
            if end < 0:
                if len(buf) > limits.max_head_bytes:
                    raise ProtocolError(431, "headers_too_large",
                                        f"request head exceeds {limits.max_head_bytes} bytes")
                # a head with bare-LF line ends never shows a CRLF CRLF: refuse it now
                if _BARE_LF.search(buf, max(0, self.checked - 1)):
                    raise ProtocolError(400, "bad_request", "request head has a bare LF "
                                        "(lines end in CRLF)")
                self.checked = len(buf)
                return None
            if end > limits.max_head_bytes:
                raise ProtocolError(431, "headers_too_large",
                                    f"request head exceeds {limits.max_head_bytes} bytes")
            head = bytes(buf[:end])
            request, length = self.server.read_head(head)
            del buf[:end + 4]
            self.head_started = 0.0
            self.checked = 0
            self.pending = _Pending(request, length, None if length is not None else
                                    ChunkedBody(head, limits.max_body_bytes, limits.max_chunks))
            if (length is None or length > len(buf)) and request.version == "1.1" and \
                    request.headers.get("expect", "").lower() == "100-continue":
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        pending = self.pending
        if pending.chunked is not None:
            body = pending.chunked.feed(buf)
            if body is None:
                return None
        else:
            length = pending.length or 0
            if len(buf) < length:
                return None
            body = bytes(buf[:length])
            del buf[:length]
        self.pending = None
        request = pending.request
        request.body = body
        request.received = time.perf_counter()
        self.started = self.head_started = time.monotonic() if buf else 0.0
        return request

    # ---- answering -----------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        self.busy = True
        self.server.in_flight += 1
        try:
            result = self.server.handle(request)
        except Exception:  # a handler bug: the client still gets an answer
            log.exception("unexpected error in %s %s", request.method, request.path)
            result = error_response(500, "internal_error",
                                    "unexpected server error (see the server log)")
        if isinstance(result, Response):
            self._answer(request, result)
        else:
            result.add_done_callback(lambda fut: self._answered(request, fut))

    def _answered(self, request: Request, fut: asyncio.Future[Response]) -> None:
        if fut.cancelled():
            response = error_response(503, "cancelled", "the server is shutting down")
        elif (exc := fut.exception()) is not None:
            log.error("unexpected error in %s %s", request.method, request.path, exc_info=exc)
            response = error_response(500, "internal_error",
                                      "unexpected server error (see the server log)")
        else:
            response = fut.result()
        self._answer(request, response)
        self.process()  # requests pipelined behind this one

    def _answer(self, request: Request, response: Response) -> None:
        if not self.busy:  # the connection was lost while the handler ran; forget() counted it
            return
        self.busy = False
        self.server.in_flight -= 1
        headers = request.headers
        connection = headers.get("connection", "").lower()
        keep = ("keep-alive" in connection) if request.version == "1.0" else (
            "close" not in connection)
        close = not keep or self.server.draining
        body = b"" if request.method == "HEAD" else response.body
        self._write(_head_bytes(response.status, response, len(response.body), close,
                                request.version == "1.0") + body)
        self.last_active = time.monotonic()
        if close:
            self.close()
        elif self.transport is not None and not self.write_paused and \
                not self.transport.is_reading():
            self.transport.resume_reading()
        if self.server.draining and not self.busy:
            self.server.idle.set()

    def _refuse(self, exc: ProtocolError) -> None:
        """Answer, then close gently: the client may still be sending the body we refused, and
        closing with unread data makes the kernel reset the connection before the client has
        read the answer. So our side is shut for writing and what still arrives is read and
        dropped, for a few seconds at most (a "lingering close", as web servers do)."""
        response = error_response(exc.status, exc.code, exc.detail)
        self._write(_head_bytes(exc.status, response, len(response.body), True) + response.body)
        self.buf.clear()
        self.pending = None
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        self.closing = self.lingering = True
        transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.close)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.closing = True
        self.lingering = False
        if self.transport is not None:
            self.transport.close()

    def sweep(self, now: float) -> None:
        """Close an idle keep-alive connection; answer 408 to a request that stalls."""
        if self.busy or self.closing:
            return
        limits = self.server.limits
        if self.reading_request:
            if self.head_started and now - self.head_started > limits.head_timeout_s:
                self._refuse(ProtocolError(408, "request_timeout", "the request head did not "
                                           f"arrive within {limits.head_timeout_s:g} s"))
            elif self.started and now - self.started > limits.request_timeout_s:
                self._refuse(ProtocolError(408, "request_timeout", "the request did not arrive "
                                           f"within {limits.request_timeout_s:g} s"))
        elif now - self.last_active > self.server.idle_timeout:
            self.close()

    @property
    def idle(self) -> bool:
        """Between requests: nothing to answer, nothing arriving."""
        return not (self.busy or self.closing or self.reading_request)


@dataclass
class HttpServer:
    """Routes ``(method, path)`` to handlers; answers 404/405 as JSON."""

    limits: Limits = field(default_factory=Limits)
    routes: dict[str, dict[str, Handler]] = field(default_factory=dict)
    connections: set[_Connection] = field(default_factory=set)
    in_flight: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    _heads: dict[bytes, tuple[Request, int | None]] = field(default_factory=dict)
    _server: asyncio.base_events.Server | None = None
    _sweeper: asyncio.Task[None] | None = None

    def read_head(self, head: bytes) -> tuple[Request, int | None]:
        """The parsed head and its body length (None: chunked), from a cache keyed by the head's
        bytes: a client sends the same head again and again (only Content-Length varies with
        the body), and parsing is a pure function of those bytes. Only good heads are cached;
        the headers dict is shared between requests and must be treated as read-only."""
        cached = self._heads.get(head)
        if cached is None:
            parsed = parse_head(head)
            cached = (parsed, framing(parsed, self.limits.max_body_bytes))
            if len(self._heads) >= HEAD_CACHE_SIZE:
                self._heads.clear()
            self._heads[head] = cached
        template, length = cached
        return Request(template.method, template.path, template.query, template.version,
                       template.headers), length

    @property
    def idle_timeout(self) -> float:
        return self.limits.idle_timeout(len(self.connections))

    def admit(self, conn: _Connection) -> bool:
        """Count a new connection in; at the limit the longest-idle one makes room, and with
        none idle the new one is refused (False)."""
        if len(self.connections) >= self.limits.max_connections:
            idle = [c for c in self.connections if c.idle]
            if not idle:
                log.warning("refusing a connection: %d open (max_connections)",
                            len(self.connections))
                return False
            victim = min(idle, key=lambda c: c.last_active)
            victim.close()
            self.connections.discard(victim)  # connection_lost comes later, forget() is safe
        self.connections.add(conn)
        return True

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes.setdefault(path, {})[method] = handler
        if method == "GET":
            self.routes[path].setdefault("HEAD", handler)

    def handle(self, request: Request) -> Response | asyncio.Future[Response]:
        methods = self.routes.get(request.path)
        if methods is None:
            return error_response(404, "not_found", f"{request.method} {request.path}: no such "
                                  f"endpoint (known: {', '.join(sorted(self.routes))})")
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return error_response(405, "method_not_allowed",
                                  f"{request.method} {request.path}: use {allowed}",
                                  headers=(("Allow", allowed),))
        return handler(request)

    @property
    def reading(self) -> int:
        """Connections holding part of a request (the micro-batcher waits for them)."""
        return sum(1 for c in self.connections if c.pending is not None)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]

    async def start(self, host: str, port: int, backlog: int = 1024,
                    reuse_port: bool = False) -> None:
        """Listen; ``reuse_port``: beside other processes on the same port (SO_REUSEPORT: the
        kernel spreads new connections over the listeners)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                backlog=backlog, reuse_address=True,
                                                reuse_port=reuse_port or None)
        self._sweeper = loop.create_task(self._sweep(), name="http-sweeper")

    def forget(self, conn: _Connection) -> None:
        if conn.busy:
            conn.busy = False
            self.in_flight -= 1
        self.connections.discard(conn)
        if self.draining:
            self.idle.set()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.sweep(now)

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish (up to ``timeout``), close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for conn in list(self.connections):
                if not conn.busy and not conn.reading_request:
                    conn.close()
            if not self.connections or loop.time() >= deadline:
                break
            self.idle.clear()
            try:
                await asyncio.wait_for(self.idle.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                pass
        for conn in list(self.connections):
            log.warning("closing a connection with a request still in flight after %g s", timeout)
            if conn.transport is not None:
                conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            await self._server.wait_closed()

