"""Request bodies: split and chunked, framing, size limits, lingering close, 100-continue."""

from __future__ import annotations

from contextlib import suppress

import pytest

from models.serve import http
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

# ---- bodies: split, chunked, limits -----------------------------------------------------------

CHUNKED_BODY = (b"5;name=value\r\nhello\r\n"
                b"2;quoted=\"a;b\"\r\n, \r\n"
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
    pytest.param(b"ffffffffffffffffffff\r\n", id="chunk-size-overflow"),
    pytest.param(b"2 ;a=b\r\nhi\r\n0\r\n\r\n", id="space-after-size"),
    pytest.param(b"2;a=b\nc\r\nhi\r\n0\r\n\r\n", id="bare-lf-in-extension"),
    pytest.param(b"2;a=b\rc\r\nhi\r\n0\r\n\r\n", id="bare-cr-in-extension"),
    pytest.param(b"2;a=\x01\r\nhi\r\n0\r\n\r\n", id="ctl-in-extension"),
    pytest.param(b"2;a b\r\nhi\r\n0\r\n\r\n", id="space-in-extension-name"),
    pytest.param(b"2\nhi\r\n0\r\n\r\n", id="bare-lf-after-size"),
    pytest.param(b"2\r\nhi\n0\r\n\r\n", id="bare-lf-after-data"),
    pytest.param(b"2\r\nhi\r\n0\r\n\n", id="bare-lf-ends-trailers"),
    pytest.param(b"2\r\nhi\r\n0\r\nX-T: a\x00b\r\n\r\n", id="nul-in-trailer"),
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
    pytest.param(b"8\r\n12345678\r\n8\r\n12345678\r\n1\r\nx", id="chunks-add-up-over"),
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
            await client.send(req("POST", "/echo", f"Content-Length: {size}"))
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
            await client.send(b"N(T HTTP\r\n\r\n")
            await assert_refused(client, 400, "bad_request")
            await until(lambda: not app.server.connections)  # although the client stays

    run(scenario())


def test_lingering_connection_is_closed_after_too_much_dropped_data(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "LINGER_MAX_BYTES", 1000)

    async def scenario() -> None:
        async with serving(Limits(max_body_bytes=10)) as app:
            client = await app.connect()
            await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
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
    pytest.param(("Transfer-Encoding: gzip",), 400, "bad_request", id="te-gzip-not-chunked-last"),
    pytest.param(("Transfer-Encoding: gzip, chunked",), 400, "unsupported_transfer_coding",
                 id="te-gzip-then-chunked"),
    pytest.param(("Transfer-Encoding: chunked, chunked",), 400, "bad_request",
                 id="te-chunked-twice"),
    pytest.param(("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 400,
                 "bad_request", id="te-header-twice"),
    pytest.param(("Transfer-Encoding: chunked\x0b",), 400, "bad_request", id="te-vtab"),
    pytest.param(("Transfer-Encoding: xchunked",), 400, "bad_request", id="te-xchunked"),
    pytest.param(("Content-Length: 3, 3",), 400, "bad_request", id="cl-one-value-twice"),
    pytest.param(("Content-Length: \x0b2",), 400, "bad_request", id="cl-vertical-tab"),
    pytest.param(("Content-Length: 2\xa0",), 400, "bad_request", id="cl-no-break-space"),
    pytest.param(("Content-Length: \x0c2",), 400, "bad_request", id="cl-form-feed"),
    pytest.param(("Content-Length: " + "9" * 19,), 400, "bad_request", id="cl-19-digits"),
    pytest.param(("Content-Length: " + "1" * 5000,), 400, "bad_request", id="cl-5000-digits"),
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


def test_content_length_with_leading_zeros_and_spaces_is_read_as_decimal(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as app:
            client = await app.connect()
            await client.send(req("POST", "/echo", "Content-Length:  003 ", body=b"abc"))
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
