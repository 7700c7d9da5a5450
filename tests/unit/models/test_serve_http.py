"""Our HTTP/1.1 server (models/serve/http.py) over raw sockets, on the stdlib loop and on uvloop.

Raw bytes, not an HTTP client: the cases are the bytes a client library never sends (heads split
byte by byte, bad framing, smuggling attempts) and the state of the connection after each answer.
Each test runs on both loops because their transports differ (uvloop's are not subclasses of
``asyncio.Transport``, and half-close, ``write_eof`` and flow control are their own code).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest

from models.serve import http
from models.serve.http import HttpServer, Limits, Request, Response, json_response

#: how long one read may wait; the sweeper runs every second, so timeouts need up to ~2.5 s
READ_TIMEOUT_S = 3.0
#: a whole scenario; a hang fails the test instead of stalling the run
SCENARIO_TIMEOUT_S = 15.0

Scenario = Coroutine[Any, Any, None]
Run = Callable[[Scenario], None]


def _loop_factories() -> list[Any]:
    params = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip(
            reason="uvloop is not installed (.venv/bin/pip install uvloop)")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a scenario to completion on a fresh loop of the parametrized kind."""
    factory = request.param

    def run(scenario: Scenario) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))

    return run


# ---- the server under test --------------------------------------------------------------------


def _settle(fut: asyncio.Future[Response], response: Response) -> None:
    if not fut.done():
        fut.set_result(response)


def _fail(fut: asyncio.Future[Response]) -> None:
    if not fut.done():
        fut.set_exception(RuntimeError("async handler bug"))


def _cancel(fut: asyncio.Future[Response]) -> None:
    fut.cancel()


def hello(request: Request) -> Response:
    return json_response({"hello": "world"})


def echo(request: Request) -> Response:
    return Response(200, request.body, content_type="application/octet-stream")


def info(request: Request) -> Response:
    return json_response({"method": request.method, "path": request.path,
                          "query": request.query, "version": request.version,
                          "headers": request.headers})


def boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


def _deferred(request: Request, then: Callable[[asyncio.Future[Response]], None],
              delay: float = 0.05) -> asyncio.Future[Response]:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Response] = loop.create_future()
    loop.call_later(delay, then, fut)
    return fut


def later(request: Request) -> asyncio.Future[Response]:
    """Answers ``later:<body>`` after ``?s=`` seconds (0.05 by default), as the batcher does."""
    delay = float(request.query.removeprefix("s=") or 0.05)
    response = Response(200, b"later:" + request.body, content_type="text/plain")
    return _deferred(request, lambda fut: _settle(fut, response), delay)


@dataclass
class Reply:
    version: str
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        return str(self.json()["error"])


class Client:
    """One raw connection: exact bytes out, responses parsed by status line and Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_slowly(self, data: bytes, piece: int) -> None:
        """In ``piece``-byte writes, each its own segment (the server reads them one by one)."""
        for i in range(0, len(data), piece):
            await self.send(data[i:i + piece])
            await asyncio.sleep(0.002)

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)

    async def reply(self, *, head_only: bool = False) -> Reply:
        status_line, *lines = (await self.head())[:-4].decode("latin-1").split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            assert sep, f"malformed response header {line!r}"
            headers[name.lower()] = value.strip()
        length = int(headers["content-length"])
        body = b"" if head_only else await asyncio.wait_for(self.reader.readexactly(length),
                                                            READ_TIMEOUT_S)
        return Reply(version, int(status), reason, headers, body)

    async def closed(self, timeout: float = READ_TIMEOUT_S) -> bool:
        """The server closed its side: the next read is EOF (not data, not a reset)."""
        return await asyncio.wait_for(self.reader.read(1), timeout) == b""

    def reset(self) -> None:
        """Close with an RST, as a client that gives up does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


@dataclass
class App:
    server: HttpServer
    #: the futures of ``POST /never``, which only the test settles
    never: list[asyncio.Future[Response]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def connect(self) -> Client:
        host, port = self.server.addresses[0]
        client = Client(*await asyncio.open_connection(host, port))
        self.clients.append(client)
        return client

    def connection(self) -> Any:
        """The server side of the only connection."""
        (conn,) = self.server.connections
        return conn

    def hold(self, request: Request) -> asyncio.Future[Response]:
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.never.append(fut)
        return fut


@asynccontextmanager
async def serving(limits: Limits | None = None) -> AsyncIterator[App]:
    server = HttpServer(limits or Limits())
    app = App(server)
    server.route("GET", "/hello", hello)
    server.route("POST", "/echo", echo)
    server.route("GET", "/info", info)
    server.route("POST", "/later", later)
    server.route("GET", "/boom", boom)
    server.route("GET", "/boom-later", lambda r: _deferred(r, _fail))
    server.route("GET", "/cancelled-later", lambda r: _deferred(r, _cancel))
    server.route("POST", "/never", app.hold)
    await server.start("127.0.0.1", 0)
    try:
        yield app
    finally:
        for client in app.clients:
            client.writer.transport.abort()
        for fut in app.never:
            fut.cancel()
        await server.shutdown(1.0)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def req(method: str, target: str, *headers: str, body: bytes = b"",
        version: str = "HTTP/1.1") -> bytes:
    """A request; Content-Length is added for a body unless a framing header is given."""
    lines = [f"{method} {target} {version}", *headers]
    framed = any(h.lower().startswith(("content-length:", "transfer-encoding:")) for h in headers)
    if body and not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


GET_HELLO = req("GET", "/hello")
HELLO_BODY = json.dumps({"hello": "world"}).encode()


async def assert_refused(client: Client, status: int, code: str) -> None:
    """The refusal is a JSON error with ``Connection: close``, then the server closes."""
    reply = await client.reply()
    assert (reply.status, reply.error) == (status, code), reply.body
    assert reply.headers["connection"] == "close"
    assert reply.headers["content-type"] == "application/json"
    assert await client.closed()


# ---- answering and keep-alive -----------------------------------------------------------------


def test_get_is_answered_with_json_length_and_reason(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(GET_HELLO)
            reply = await client.reply()
            assert (reply.version, reply.status, reply.reason) == ("HTTP/1.1", 200, "OK")
            assert reply.headers == {"content-type": "application/json",
                                     "content-length": str(len(HELLO_BODY))}
            assert reply.body == HELLO_BODY

    run(scenario())


PERSISTENCE = [
    pytest.param("HTTP/1.1", None, False, id="http11-keeps-alive-by-default"),
    pytest.param("HTTP/1.1", "close", True, id="http11-connection-close-closes"),
    pytest.param("HTTP/1.1", "Close", True, id="http11-connection-close-any-case"),
    pytest.param("HTTP/1.0", None, True, id="http10-closes-by-default"),
    pytest.param("HTTP/1.0", "keep-alive", False, id="http10-keep-alive-keeps"),
    pytest.param("HTTP/1.0", "Keep-Alive", False, id="http10-keep-alive-any-case"),
]


@pytest.mark.parametrize(("version", "connection", "closes"), PERSISTENCE)
def test_connection_persistence(run: Run, version: str, connection: str | None,
                                closes: bool) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            headers = [f"Connection: {connection}"] if connection else []
            request = req("GET", "/hello", *headers, version=version)
            await client.send(request)
            first = await client.reply()
            assert (first.status, first.body) == (200, HELLO_BODY)
            if closes:
                assert first.headers["connection"] == "close"
                assert await client.closed()
                return
            # an HTTP/1.0 client reuses the connection only when the answer says keep-alive
            expected = "keep-alive" if version == "HTTP/1.0" else None
            assert first.headers.get("connection") == expected
            await client.send(request)  # the same connection serves the next request
            second = await client.reply()
            assert (second.status, second.body) == (200, HELLO_BODY)
            assert len(app.server.connections) == 1

    run(scenario())


def test_a_later_http_1x_minor_version_is_answered_as_1_1(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("GET", "/hello", version="HTTP/1.2"))
            reply = await client.reply()
            assert (reply.version, reply.status, reply.body) == ("HTTP/1.1", 200, HELLO_BODY)
            assert "connection" not in reply.headers  # kept alive, as 1.1

    run(scenario())


def test_pipelined_requests_are_answered_in_order_around_an_async_handler(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(GET_HELLO + req("POST", "/later?s=0.1", body=b"two")
                              + req("POST", "/echo", body=b"three"))
            first, second, third = [await client.reply() for _ in range(3)]
            assert (first.status, first.body) == (200, HELLO_BODY)
            assert (second.status, second.body) == (200, b"later:two")
            assert (third.status, third.body) == (200, b"three")

    run(scenario())


def test_pipelining_far_ahead_of_a_slow_answer_pauses_reading_and_loses_nothing(
        run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_head_bytes=512)) as app:
            client = await app.connect()
            behind = b"".join(req("GET", f"/info?i={i}") for i in range(100))
            assert len(behind) > 4 * 512
            await client.send(req("POST", "/never", body=b"first") + behind)
            conn = app.connection()
            await until(lambda: len(conn.buf) > 512)
            assert not conn.transport.is_reading()  # a client far ahead waits for us
            app.never[0].set_result(Response(200, b"first"))
            assert (await client.reply()).body == b"first"
            for i in range(100):
                reply = await client.reply()
                assert (reply.status, reply.json()["query"]) == (200, f"i={i}")

    run(scenario())


def test_blank_lines_before_a_request_line_are_ignored(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(b"\r\n\r\n\r\n" + GET_HELLO)
            assert (await client.reply()).body == HELLO_BODY

    run(scenario())


def test_request_line_and_headers_reach_the_handler_parsed(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("GET", "/info?a=1&b=2", "Host: example", "X-Multi: one",
                                  "x-multi: \t two  ", "X-Empty:"))
            assert (await client.reply()).json() == {
                "method": "GET", "path": "/info", "query": "a=1&b=2", "version": "1.1",
                "headers": {"host": "example", "x-multi": "one, two", "x-empty": ""}}

    run(scenario())


# ---- bodies: split, chunked, limits -----------------------------------------------------------

CHUNKED = ("Transfer-Encoding: chunked",)
CHUNKED_BODY = (b"5;name=value\r\nhello\r\n"
                b"2 ; quoted=\"a;b\"\r\n, \r\n"
                b"A\r\n0123456789\r\n"
                b"0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n")


@pytest.mark.parametrize(("headers", "body", "expected"), [
    pytest.param((), b"x" * 300, b"x" * 300, id="content-length"),
    pytest.param(CHUNKED, CHUNKED_BODY, b"hello, 0123456789", id="chunked"),
])
def test_request_split_into_small_writes_is_reassembled(
        run: Run, headers: tuple[str, ...], body: bytes, expected: bytes) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            request = req("POST", "/echo", *headers, body=body)
            head_end = request.index(b"\r\n\r\n") + 4
            await client.send_slowly(request[:head_end], 1)  # the head byte by byte
            await client.send_slowly(request[head_end:], 7)  # the body in pieces
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, expected)

    run(scenario())


def test_chunked_body_with_extensions_and_trailers_is_reassembled(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *CHUNKED, body=CHUNKED_BODY) + GET_HELLO)
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, b"hello, 0123456789")
            assert (await client.reply()).body == HELLO_BODY  # the trailers were consumed

    run(scenario())


def test_chunked_coding_name_is_case_insensitive(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", "Transfer-Encoding: Chunked",
                                  body=b"3\r\nabc\r\n0\r\n\r\n"))
            assert (await client.reply()).body == b"abc"

    run(scenario())


@pytest.mark.parametrize("body", [
    pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="not-hex"),
    pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-size"),
    pytest.param(b"-1\r\nhello\r\n0\r\n\r\n", id="negative"),
    pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="0x-prefix"),
    pytest.param(b"+5\r\nhello\r\n0\r\n\r\n", id="plus-sign"),
    pytest.param(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n", id="underscore"),
    pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="data-not-followed-by-crlf"),
    pytest.param(b"1" * 5000, id="size-line-too-long"),
])
def test_malformed_chunked_body_is_400(run: Run, body: bytes) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *CHUNKED, body=body))
            await assert_refused(client, 400, "bad_request")

    run(scenario())


@pytest.mark.parametrize("body", [
    pytest.param(b"11\r\n" + b"x" * 17 + b"\r\n0\r\n\r\n", id="one-chunk-over"),
    pytest.param(b"8\r\n12345678\r\n8\r\n12345678\r\n1\r\n", id="chunks-add-up-over"),
    pytest.param(b"ffffffffffffffffffff\r\n", id="huge-size-before-any-data"),
])
def test_chunked_body_over_max_body_bytes_is_413(run: Run, body: bytes) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=16)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *CHUNKED, body=body))
            await assert_refused(client, 413, "body_too_large")

    run(scenario())


def test_body_of_exactly_max_body_bytes_is_accepted(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=16)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", body=b"x" * 16)
                              + req("POST", "/echo", *CHUNKED, body=b"10\r\n" + b"y" * 16
                                    + b"\r\n0\r\n\r\n"))
            assert (await client.reply()).body == b"x" * 16
            assert (await client.reply()).body == b"y" * 16

    run(scenario())


def test_413_is_readable_while_the_client_is_still_sending_the_body(run: Run) -> None:
    """Lingering close: closing with the refused body unread would reset the connection and the
    client would lose the 413 it has not read yet."""
    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=1024)) as app:
            client = await app.connect()
            size = 8 << 20
            await client.send(f"POST /echo HTTP/1.1\r\nContent-Length: {size}\r\n\r\n".encode())
            await until(lambda: any(c.lingering for c in app.server.connections))  # refused
            piece = b"x" * (64 << 10)
            for _ in range(size // len(piece)):
                await client.send(piece)  # what a client does that never looks at the answer
            await assert_refused(client, 413, "body_too_large")

    run(scenario())


def test_lingering_connection_is_closed_once_the_client_closes(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=10)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", body=b"x" * 100))
            await assert_refused(client, 413, "body_too_large")
            client.writer.write_eof()
            await until(lambda: not app.server.connections)

    run(scenario())


def test_lingering_connection_is_closed_after_linger_time(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "LINGER_S", 0.1)

    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(b"NOT HTTP\r\n\r\n")
            await assert_refused(client, 400, "bad_request")
            await until(lambda: not app.server.connections)  # although the client stays

    run(scenario())


def test_lingering_connection_is_closed_after_too_much_dropped_data(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "LINGER_MAX_BYTES", 1000)

    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=10)) as app:
            client = await app.connect()
            await client.send(b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
            await assert_refused(client, 413, "body_too_large")
            with suppress(ConnectionError):
                await client.send(b"x" * 100_000)
            await until(lambda: not app.server.connections)  # long before LINGER_S

    run(scenario())


@pytest.mark.parametrize(("headers", "status", "code"), [
    pytest.param(("Content-Length: 5", "Transfer-Encoding: chunked"), 400, "bad_request",
                 id="content-length-and-transfer-encoding"),
    pytest.param(("Transfer-Encoding: chunked", "Content-Length: 5"), 400, "bad_request",
                 id="transfer-encoding-and-content-length"),
    pytest.param(("Transfer-Encoding: gzip",), 501, "not_implemented", id="te-gzip"),
    pytest.param(("Transfer-Encoding: gzip, chunked",), 501, "not_implemented",
                 id="te-gzip-then-chunked"),
    pytest.param(("Transfer-Encoding: chunked, chunked",), 501, "not_implemented",
                 id="te-chunked-twice"),
    pytest.param(("Content-Length: abc",), 400, "bad_request", id="cl-not-a-number"),
    pytest.param(("Content-Length: 1, 2",), 400, "bad_request", id="cl-two-values"),
    pytest.param(("Content-Length: 1", "Content-Length: 2"), 400, "bad_request",
                 id="cl-two-headers"),
    pytest.param(("Content-Length: -1",), 400, "bad_request", id="cl-negative"),
    pytest.param(("Content-Length: +1",), 400, "bad_request", id="cl-plus-sign"),
    pytest.param(("Content-Length:",), 400, "bad_request", id="cl-empty"),
    pytest.param(("Content-Length: 0x10",), 400, "bad_request", id="cl-hex"),
    pytest.param(("Content-Length: \xb2",), 400, "bad_request", id="cl-superscript-digit"),
    pytest.param(("Content-Length: 2000000",), 413, "body_too_large", id="cl-over-limit"),
])
def test_bad_body_framing_is_refused(run: Run, headers: tuple[str, ...], status: int,
                                     code: str) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *headers))
            await assert_refused(client, status, code)

    run(scenario())


def test_content_length_listing_one_value_twice_is_accepted(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", "Content-Length: 3, 3", body=b"abc"))
            assert (await client.reply()).body == b"abc"

    run(scenario())


# ---- Expect: 100-continue ---------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "body"), [
    pytest.param((), b"hello", id="content-length"),
    pytest.param(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", id="chunked"),
])
def test_expect_100_continue_is_answered_before_the_body_is_sent(
        run: Run, headers: tuple[str, ...], body: bytes) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            framing = headers or (f"Content-Length: {len(body)}",)
            await client.send(req("POST", "/echo", "Expect: 100-continue", *framing))
            assert await client.head() == b"HTTP/1.1 100 Continue\r\n\r\n"
            await client.send(body)
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, b"hello")

    run(scenario())


@pytest.mark.parametrize(("request_bytes", "status"), [
    pytest.param(req("POST", "/echo", "Expect: 100-continue", body=b"hello"), 200,
                 id="body-already-sent"),
    pytest.param(req("POST", "/echo", "Expect: 100-continue", body=b"hello",
                     version="HTTP/1.0"), 200, id="http10"),
    pytest.param(req("POST", "/echo", "Expect: 100-continue", "Content-Length: 2000000"), 413,
                 id="refused-body"),
])
def test_no_100_continue_when_the_final_answer_comes_first(run: Run, request_bytes: bytes,
                                                           status: int) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(request_bytes)
            assert (await client.reply()).status == status

    run(scenario())


# ---- malformed heads --------------------------------------------------------------------------


@pytest.mark.parametrize(("head", "status", "code"), [
    pytest.param(b"GET /hello\r\n\r\n", 400, "bad_request", id="two-part-request-line"),
    pytest.param(b"GET /hello HTTP/1.1 x\r\n\r\n", 400, "bad_request", id="four-parts"),
    pytest.param(b"GET  /hello HTTP/1.1\r\n\r\n", 400, "bad_request", id="double-space"),
    pytest.param(b"G(T /hello HTTP/1.1\r\n\r\n", 400, "bad_request", id="method-not-token"),
    pytest.param(b"GET /hello http/1.1\r\n\r\n", 400, "bad_request", id="lower-case-version"),
    pytest.param(b"GET /hello HTTP/2.0\r\n\r\n", 505, "http_version_not_supported",
                 id="http2"),
    pytest.param(b"GET /hello HTTP/0.9\r\n\r\n", 505, "http_version_not_supported",
                 id="http09"),
    pytest.param(b"GET hello HTTP/1.1\r\n\r\n", 400, "bad_request", id="target-no-slash"),
    pytest.param(b"GET http://h/hello HTTP/1.1\r\n\r\n", 400, "bad_request",
                 id="absolute-form-target"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\n\r\n", 400, "bad_request", id="asterisk-target"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost example\r\n\r\n", 400, "bad_request",
                 id="header-without-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost : example\r\n\r\n", 400, "bad_request",
                 id="space-before-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\nX-A: one\r\n  two\r\n\r\n", 400, "bad_request",
                 id="obs-fold"),
    pytest.param(b"GET /hello HTTP/1.1\r\nX-A: one\r\n\ttwo: x\r\n\r\n", 400, "bad_request",
                 id="obs-fold-with-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\n: value\r\n\r\n", 400, "bad_request",
                 id="empty-header-name"),
])
def test_malformed_head_is_refused(run: Run, head: bytes, status: int, code: str) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(head)
            await assert_refused(client, status, code)

    run(scenario())


HEAD_LIMIT = 256


def _head_of(size: int) -> bytes:
    """A GET head of exactly ``size`` bytes before its blank line."""
    start = b"GET /hello HTTP/1.1\r\nX-Pad: "
    return start + b"p" * (size - len(start)) + b"\r\n\r\n"


@pytest.mark.parametrize("data", [
    pytest.param(_head_of(HEAD_LIMIT + 1), id="complete-head-one-byte-over"),
    pytest.param(b"GET /hello HTTP/1.1\r\nX-Pad: " + b"p" * 2 * HEAD_LIMIT,
                 id="unfinished-head-over"),
])
def test_head_over_max_head_bytes_is_431(run: Run, data: bytes) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_head_bytes=HEAD_LIMIT)) as app:
            client = await app.connect()
            await client.send(data)
            await assert_refused(client, 431, "headers_too_large")

    run(scenario())


def test_head_of_exactly_max_head_bytes_is_accepted(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_head_bytes=HEAD_LIMIT)) as app:
            client = await app.connect()
            await client.send(_head_of(HEAD_LIMIT))
            assert (await client.reply()).body == HELLO_BODY

    run(scenario())


# ---- routing ----------------------------------------------------------------------------------


def test_unknown_path_is_404_listing_the_endpoints_and_keeps_the_connection(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("GET", "/nope?x=1"))
            reply = await client.reply()
            assert (reply.status, reply.error) == (404, "not_found")
            assert "GET /nope: no such endpoint" in reply.json()["detail"]
            assert "/hello" in reply.json()["detail"]
            await client.send(GET_HELLO)
            assert (await client.reply()).body == HELLO_BODY

    run(scenario())


@pytest.mark.parametrize(("method", "path", "allow"), [
    pytest.param("POST", "/hello", "GET, HEAD", id="post-on-get-route"),
    pytest.param("GET", "/echo", "POST", id="get-on-post-route"),
    pytest.param("HEAD", "/echo", "POST", id="head-on-post-route"),
])
def test_wrong_method_is_405_with_allow(run: Run, method: str, path: str, allow: str) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req(method, path) + GET_HELLO)
            reply = await client.reply(head_only=method == "HEAD")
            assert reply.status == 405
            assert reply.headers["allow"] == allow
            if method != "HEAD":
                assert reply.error == "method_not_allowed"
            assert (await client.reply()).body == HELLO_BODY  # still open, framing intact

    run(scenario())


def test_head_on_a_get_route_has_content_length_but_no_body(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("HEAD", "/hello") + GET_HELLO)
            head = await client.reply(head_only=True)
            assert head.status == 200
            assert head.headers["content-length"] == str(len(HELLO_BODY))
            after = await client.reply()  # would fail to parse had the HEAD carried a body
            assert (after.status, after.body) == (200, HELLO_BODY)

    run(scenario())


# ---- handler failures -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status", "code"), [
    pytest.param("/boom", 500, "internal_error", id="handler-raises"),
    pytest.param("/boom-later", 500, "internal_error", id="future-fails"),
    pytest.param("/cancelled-later", 503, "cancelled", id="future-cancelled"),
])
def test_handler_failure_is_answered_and_the_connection_serves_the_next_request(
        run: Run, path: str, status: int, code: str) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("GET", path))
            reply = await client.reply()
            assert (reply.status, reply.error) == (status, code)
            assert "connection" not in reply.headers
            await client.send(GET_HELLO)
            assert (await client.reply()).body == HELLO_BODY
            assert app.server.in_flight == 0

    run(scenario())


def test_half_closed_client_still_gets_the_answer_in_flight(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/later?s=0.1", body=b"x") + GET_HELLO)
            client.writer.write_eof()
            assert (await client.reply()).body == b"later:x"
            assert (await client.reply()).body == HELLO_BODY
            assert await client.closed()

    run(scenario())


def test_in_flight_returns_to_zero_when_a_lost_connection_is_answered_later(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/never", body=b"x"))
            await until(lambda: app.server.in_flight == 1)
            client.reset()
            await until(lambda: not app.server.connections)
            assert app.server.in_flight == 0
            app.never[0].set_result(Response(200))  # the handler finishes after all
            await asyncio.sleep(0.01)
            assert app.server.in_flight == 0

    run(scenario())


# ---- timeouts ---------------------------------------------------------------------------------

FAST = Limits(keepalive_timeout_s=0.3, request_timeout_s=0.3)


def test_idle_keepalive_connection_is_closed(run: Run) -> None:
    async def scenario() -> None:
        async with serving(FAST) as app:
            client = await app.connect()
            await client.send(GET_HELLO)
            assert (await client.reply()).body == HELLO_BODY
            idle_since = time.monotonic()
            assert await client.closed()
            assert time.monotonic() - idle_since >= 0.3

    run(scenario())


def test_stalled_partial_request_is_answered_408(run: Run) -> None:
    stalls = [b"GET /hel",  # in the head
              req("POST", "/echo", "Content-Length: 10") + b"abc",  # in the body
              req("POST", "/echo", *CHUNKED) + b"5\r\nhel"]  # in a chunk

    async def scenario() -> None:
        async with serving(FAST) as app:
            clients = [await app.connect() for _ in stalls]
            for client, stall in zip(clients, stalls, strict=True):
                await client.send(stall)
            for client in clients:
                await assert_refused(client, 408, "request_timeout")

    run(scenario())


def test_busy_connection_is_not_timed_out(run: Run) -> None:
    async def scenario() -> None:
        async with serving(FAST) as app:
            client = await app.connect()
            await client.send(req("POST", "/never", body=b"x") + b"GET /hel")  # and a stall
            await until(lambda: app.server.in_flight == 1)
            app.connection().sweep(time.monotonic() + 100)
            app.never[0].set_result(Response(200, b"done"))
            assert (await client.reply()).body == b"done"

    run(scenario())


def test_request_timeout_counts_from_the_first_byte_of_each_request(run: Run) -> None:
    """A stray CRLF after a body (old clients send one) must not start the clock of the next
    request, which may come much later on the kept-alive connection."""
    async def scenario() -> None:
        async with serving(Limits(request_timeout_s=1.0)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", body=b"hi") + b"\r\n")
            assert (await client.reply()).body == b"hi"
            await asyncio.sleep(0.4)  # idle, well within keepalive_timeout_s
            await client.send(b"GET /hel")
            conn = app.connection()
            await until(lambda: bool(conn.buf))
            conn.sweep(time.monotonic() + 0.8)  # 0.8 s into this request: not late
            await client.send(b"lo HTTP/1.1\r\n\r\n")
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, HELLO_BODY)

    run(scenario())


# ---- shutdown ---------------------------------------------------------------------------------


def test_shutdown_answers_the_request_in_flight_with_connection_close(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/later?s=0.3", body=b"x"))
            await until(lambda: app.server.in_flight == 1)
            loop = asyncio.get_running_loop()
            began = loop.time()
            shutdown = asyncio.ensure_future(app.server.shutdown(5.0))
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, b"later:x")
            assert reply.headers["connection"] == "close"
            assert await client.closed()
            await shutdown
            assert 0.2 <= loop.time() - began < 2.0
            assert not app.server.connections

    run(scenario())


def test_shutdown_lets_a_partial_request_finish_and_answers_it_with_close(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(b"GET /hel")
            await until(lambda: bool(app.connection().buf))
            shutdown = asyncio.ensure_future(app.server.shutdown(5.0))
            await asyncio.sleep(0.05)
            await client.send(b"lo HTTP/1.1\r\n\r\n")
            reply = await client.reply()
            assert (reply.body, reply.headers["connection"]) == (HELLO_BODY, "close")
            await shutdown

    run(scenario())


def test_shutdown_closes_idle_connections_at_once(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            used, fresh = await app.connect(), await app.connect()
            await used.send(GET_HELLO)
            assert (await used.reply()).body == HELLO_BODY
            await until(lambda: len(app.server.connections) == 2)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await app.server.shutdown(5.0)
            assert loop.time() - began < 1.0
            assert await used.closed() and await fresh.closed()

    run(scenario())


def test_new_connections_are_refused_after_shutdown(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            host, port = app.server.addresses[0]
            await app.server.shutdown(1.0)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(host, port)

    run(scenario())


def test_shutdown_aborts_a_request_that_never_finishes_after_the_timeout(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/never", body=b"x"))
            await until(lambda: app.server.in_flight == 1)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await app.server.shutdown(0.3)
            assert 0.3 <= loop.time() - began < 1.5
            with suppress(ConnectionResetError):  # an abort may arrive as EOF or as a reset
                assert await client.closed()
            assert not app.server.connections
            assert app.server.in_flight == 0

    run(scenario())


# ---- reading ----------------------------------------------------------------------------------


def test_reading_counts_connections_between_head_and_body(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            server = app.server
            sized, chunked, partial_head, _idle = [await app.connect() for _ in range(4)]
            await until(lambda: len(server.connections) == 4)
            assert server.reading == 0
            await sized.send(req("POST", "/echo", "Content-Length: 10") + b"abc")
            await until(lambda: server.reading == 1)
            await partial_head.send(b"POST /echo HTTP/1.1\r\nContent-Len")
            await chunked.send(req("POST", "/echo", *CHUNKED) + b"3\r\nabc\r\n")
            await until(lambda: server.reading == 2)
            await sized.send(b"defghij")
            assert (await sized.reply()).body == b"abcdefghij"
            assert server.reading == 1
            await chunked.send(b"0\r\n\r\n")
            assert (await chunked.reply()).body == b"abc"
            assert server.reading == 0
            await partial_head.send(b"gth: 1\r\n\r\n")
            await until(lambda: server.reading == 1)  # the head arrived, the body has not
            await partial_head.send(b"z")
            assert (await partial_head.reply()).body == b"z"
            assert server.reading == 0

    run(scenario())


# ---- the head cache ---------------------------------------------------------------------------

HEAD = b"POST /predict?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 12"


def test_a_repeated_head_is_parsed_once_into_distinct_requests() -> None:
    server = HttpServer()
    first, length = server.read_head(HEAD)
    first.body = b"first"
    second, again = server.read_head(HEAD)
    assert (length, again) == (12, 12)
    assert second is not first and second.body == b""  # a request of its own
    assert (second.method, second.path, second.query, second.version) == (
        "POST", "/predict", "x=1", "1.1")
    assert second.headers == {"host": "h", "content-length": "12"}
    assert list(server._heads) == [HEAD]


@pytest.mark.parametrize("head", [
    b"GET /hello HTTP/2.0",
    b"POST /predict HTTP/1.1\r\nContent-Length: 99999999",
    b"POST /predict HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
])
def test_a_refused_head_is_refused_again_and_never_cached(head: bytes) -> None:
    server = HttpServer(Limits(max_body_bytes=1000))
    for _ in range(2):
        with pytest.raises(http.ProtocolError):
            server.read_head(head)
    assert server._heads == {}


def test_the_head_cache_is_bounded() -> None:
    server = HttpServer()
    for n in range(http.HEAD_CACHE_SIZE + 5):
        request, length = server.read_head(b"POST /p HTTP/1.1\r\nContent-Length: %d" % n)
        assert length == n and request.headers["content-length"] == str(n)
    assert len(server._heads) <= http.HEAD_CACHE_SIZE
