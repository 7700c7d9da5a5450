"""Resource limits against hostile clients: connections, idle and head deadlines, body memory,
and framing tricks that must be refused without a logged error (models/serve/http.py, wire.py).

Deadlines are driven by calling ``sweep`` with a clock value past them, not by waiting."""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest

from models.serve.http import Limits
from tests.unit.models.http_harness import (
    CHUNKED,
    GET_HELLO,
    HELLO_BODY,
    Run,
    assert_refused,
    req,
    serving,
    until,
)

# ---- connections ------------------------------------------------------------------------------


@pytest.mark.parametrize(("connections", "timeout"), [
    (0, 60.0), (50, 60.0), (75, 30.5), (90, 12.8), (100, 1.0), (150, 1.0),
])
def test_idle_timeout_shrinks_past_half_the_connection_limit(connections: int,
                                                             timeout: float) -> None:
    limits = Limits(max_connections=100, keepalive_timeout_s=60.0, min_idle_timeout_s=1.0)
    assert limits.idle_timeout(connections) == pytest.approx(timeout)


def test_idle_connections_are_closed_sooner_under_pressure(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_connections=4, keepalive_timeout_s=60.0,
                                  min_idle_timeout_s=0.5)) as app:
            server = app.server
            first = await app.connect()
            await until(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            conn.sweep(time.monotonic() + 5)  # few connections: 60 s idle is fine
            assert not conn.closing
            clients = [first] + [await app.connect() for _ in range(3)]
            await until(lambda: len(server.connections) == 4)
            for conn in list(server.connections):
                conn.sweep(time.monotonic() + 5)  # at the limit: 0.5 s is the idle timeout
            for client in clients:
                assert await client.closed()

    run(scenario())


def test_at_the_limit_a_new_connection_replaces_the_longest_idle_one(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_connections=3)) as app:
            clients = []
            for _ in range(3):
                client = await app.connect()
                await client.send(GET_HELLO)
                assert (await client.reply()).body == HELLO_BODY
                clients.append(client)
            newcomer = await app.connect()
            assert await clients[0].closed()  # idle the longest
            await newcomer.send(GET_HELLO)
            assert (await newcomer.reply()).body == HELLO_BODY
            await clients[2].send(GET_HELLO)
            assert (await clients[2].reply()).body == HELLO_BODY
            assert len(app.server.connections) == 3

    run(scenario())


def test_at_the_limit_with_none_idle_a_new_connection_is_503(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(max_connections=2)) as app:
            server = app.server
            slow = [await app.connect() for _ in range(2)]
            for client in slow:
                await client.send(b"GET /hel")  # both are reading a request: none is idle
            await until(lambda: len(server.connections) == 2 and
                        all(c.reading_request for c in server.connections))
            refused = await app.connect()
            await assert_refused(refused, 503, "too_many_connections")
            await slow[0].send(b"lo HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await slow[0].reply()).body == HELLO_BODY  # the others are unharmed
            assert len(server.connections) == 2

    run(scenario())


# ---- deadlines --------------------------------------------------------------------------------


def test_a_head_that_does_not_complete_in_time_is_408(run: Run) -> None:
    """Slowloris: a byte now and then keeps no head alive past ``head_timeout_s``."""
    async def scenario() -> None:
        async with serving(Limits(head_timeout_s=2.0, request_timeout_s=60.0)) as app:
            client = await app.connect()
            await client.send(b"GET /hello HTTP/1.1\r\n")
            conn = app.connection()
            await until(lambda: bool(conn.buf))
            began = conn.head_started
            await client.send(b"X-A: 1\r\n")  # more bytes do not move the deadline
            await until(lambda: conn.buf.endswith(b"1\r\n"))
            conn.sweep(began + 1.9)
            assert not conn.closing
            conn.sweep(began + 2.1)
            reply = await client.reply()
            assert (reply.status, reply.error) == (408, "request_timeout")
            assert "head" in reply.json()["detail"]
            assert await client.closed()

    run(scenario())


def test_the_head_deadline_does_not_cut_a_body_that_is_on_its_way(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(head_timeout_s=0.5, request_timeout_s=60.0)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", "Content-Length: 6") + b"abc")
            conn = app.connection()
            await until(lambda: conn.pending is not None and conn.buf == b"abc")
            conn.sweep(time.monotonic() + 10)  # past the head deadline, within the request's
            await client.send(b"def")
            assert (await client.reply()).body == b"abcdef"

    run(scenario())


# ---- body memory ------------------------------------------------------------------------------


def test_one_byte_chunks_are_gathered_into_one_buffer(run: Run) -> None:
    """A body of 1-byte chunks used to cost a bytes object per byte (~50 bytes each: 1 MiB of
    body, 56 MiB of memory); now the decoded body is one buffer and the wire bytes are consumed
    as they arrive."""
    chunks = 16_000

    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=1 << 20)) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *CHUNKED))
            conn = app.connection()
            await until(lambda: conn.pending is not None)
            before, _ = tracemalloc.get_traced_memory()
            await client.send(b"1\r\nx\r\n" * chunks)
            await until(lambda: conn.pending.chunked.chunks == chunks)
            grown = tracemalloc.get_traced_memory()[0] - before
            assert len(conn.pending.chunked.body) == chunks and len(conn.buf) < 16
            assert grown < 10 * chunks + (64 << 10), grown  # a list of bytes: 50+ per chunk
            await client.send(b"0\r\n\r\n")
            assert (await client.reply()).body == b"x" * chunks

    tracemalloc.start()
    try:
        run(scenario())
    finally:
        tracemalloc.stop()


def test_more_chunks_than_the_limit_is_400(run: Run) -> None:
    limits = Limits(max_body_bytes=1 << 16)

    async def scenario() -> None:
        async with serving(limits) as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", *CHUNKED) +
                              b"1\r\nx\r\n" * (limits.max_chunks + 1))
            reply = await client.reply()
            assert (reply.status, reply.error) == (400, "bad_request")
            assert "chunks" in reply.json()["detail"]

    run(scenario())


def test_a_chunked_body_holding_crlf_crlf_keeps_the_pipeline_in_step(run: Run) -> None:
    """The chunked decoder feeds llhttp up to each place a message could end: data that looks
    like an end, or like a request, must stay data, and the next request must stay a request."""
    data = b"\r\n\r\nGET /hello HTTP/1.1\r\n\r\n0\r\n\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)

    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            request = req("POST", "/echo", *CHUNKED, body=body) + GET_HELLO
            await client.send_slowly(request, 5)
            assert (await client.reply()).body == data
            assert (await client.reply()).body == HELLO_BODY

    run(scenario())


# ---- framing refused without a logged error ---------------------------------------------------


@pytest.mark.parametrize("request_bytes", [
    pytest.param(req("POST", "/echo", *CHUNKED, body=b"1\r\nx\r\n0\r\n\r\n", version="HTTP/1.0"),
                 id="transfer-encoding-on-http10"),
    pytest.param(req("POST", "/echo", "Content-Length: " + "1" * 5000),
                 id="content-length-of-5000-digits"),
    pytest.param(req("POST", "/echo", "Content-Length: 1" + "0" * 4400),
                 id="content-length-of-4401-digits"),
    pytest.param(req("POST", "/echo").replace(b"\r\n\r\n", "\r\nContent-Length: \u0662\r\n\r\n"
                                              .encode()), id="content-length-arabic-digit-utf8"),
    pytest.param(req("POST", "/echo", "Transfer-Encoding: chunked", "Content-Length: 3",
                     body=b"abc"), id="te-and-cl"),
])
def test_smuggling_framing_is_400_and_closes_without_a_logged_error(
        run: Run, request_bytes: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(request_bytes + GET_HELLO)  # the GET must never be answered
            await assert_refused(client, 400, "bad_request")

    with caplog.at_level(logging.WARNING, logger="models.serve"):
        run(scenario())
    assert not caplog.records, [r.getMessage() for r in caplog.records]
