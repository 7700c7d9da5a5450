"""Answering, keep-alive, pipelining, routing, HEAD and handler failures (models/serve/http.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from email.utils import parsedate_to_datetime

import pytest

from models.serve.http import Limits, Response
from tests.unit.models.http_harness import (
    GET_HELLO,
    HELLO_BODY,
    Run,
    assert_refused,
    req,
    serving,
    until,
)

# ---- answering and keep-alive -----------------------------------------------------------------


def test_get_is_answered_with_json_length_and_reason(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(GET_HELLO)
            reply = await client.reply()
            assert (reply.version, reply.status, reply.reason) == ("HTTP/1.1", 200, "OK")
            date = reply.headers.pop("date")
            assert reply.headers == {"content-type": "application/json",
                                     "content-length": str(len(HELLO_BODY))}
            assert reply.body == HELLO_BODY
            sent = parsedate_to_datetime(date)  # IMF-fixdate, in GMT (RFC 9110 5.6.7)
            assert date.endswith(" GMT") and sent.tzinfo is not None
            assert abs((sent - dt.datetime.now(dt.UTC)).total_seconds()) < 60

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


def test_an_http_1x_minor_version_other_than_0_or_1_is_400(run: Run) -> None:
    """llhttp knows no HTTP/1.2 (RFC 9110 would let it be answered as 1.1; a proxy in front
    may read it otherwise, so it is refused)."""
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("GET", "/hello", version="HTTP/1.2"))
            await assert_refused(client, 400, "http_version_not_supported")

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
            await client.send(req("GET", "/info?a=1&b=2", "X-Multi: one",
                                  "x-multi: \t two  ", "X-Empty:", host="example"))
            assert (await client.reply()).json() == {
                "method": "GET", "path": "/info", "query": "a=1&b=2", "version": "1.1",
                "headers": {"host": "example", "x-multi": "one, two", "x-empty": ""}}

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
            await asyncio.sleep(0)  # one loop turn: the future's done callbacks run first
            assert app.server.in_flight == 0

    run(scenario())
