"""Connection lifecycle: idle and request timeouts, graceful shutdown, the reading counter."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import pytest

from models.serve.http import Limits, Response
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

# ---- timeouts ---------------------------------------------------------------------------------

FAST = Limits(keepalive_timeout_s=0.3, request_timeout_s=0.3)


def test_idle_keepalive_connection_is_closed(run: Run) -> None:
    async def scenario() -> None:
        async with serving(Limits(keepalive_timeout_s=60.0)) as app:
            client = await app.connect()
            await client.send(GET_HELLO)
            assert (await client.reply()).body == HELLO_BODY
            conn = app.connection()
            conn.sweep(conn.last_active + 59)
            assert not conn.closing
            conn.sweep(conn.last_active + 61)
            assert await client.closed()

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
            conn = app.connection()
            await until(lambda: not conn.buf)  # the stray CRLF was dropped
            conn.started = conn.head_started = 1.0  # as if it had come long ago
            await client.send(b"GET /hel")
            await until(lambda: bool(conn.buf))
            conn.sweep(time.monotonic() + 0.8)  # 0.8 s into this request: not late
            await client.send(b"lo HTTP/1.1\r\nHost: t\r\n\r\n")
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
            shutdown = asyncio.ensure_future(app.server.shutdown(5.0))
            reply = await client.reply()
            assert (reply.status, reply.body) == (200, b"later:x")
            assert reply.headers["connection"] == "close"
            assert await client.closed()
            await shutdown
            assert not app.server.connections

    run(scenario())


def test_shutdown_lets_a_partial_request_finish_and_answers_it_with_close(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(b"GET /hel")
            await until(lambda: bool(app.connection().buf))
            shutdown = asyncio.ensure_future(app.server.shutdown(5.0))
            await until(lambda: app.server.draining)
            await client.send(b"lo HTTP/1.1\r\nHost: t\r\n\r\n")
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
            shutdown = asyncio.ensure_future(app.server.shutdown(60.0))
            assert await used.closed() and await fresh.closed()  # long before the timeout
            await shutdown

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
            await app.server.shutdown(0.3)
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
            await partial_head.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Len")
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
