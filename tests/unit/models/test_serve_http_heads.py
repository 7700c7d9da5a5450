"""Request heads: malformed request lines and headers, the 431 limit, the parsed-head cache."""

from __future__ import annotations

import pytest

from models.serve import http
from models.serve.http import HttpServer, Limits
from tests.unit.models.http_harness import HELLO_BODY, Run, assert_refused, serving

# ---- malformed heads --------------------------------------------------------------------------


H = b"Host: t\r\n"

MALFORMED_HEADS = [
    (b"GET /hello\r\n" + H, 400, "bad_request", "two-part-request-line"),
    (b"GET /hello HTTP/1.1 x\r\n" + H, 400, "bad_request", "four-parts"),
    (b"GET  /hello HTTP/1.1\r\n" + H, 400, "bad_request", "double-space"),
    (b"GET /hello  HTTP/1.1\r\n" + H, 400, "bad_request", "double-space-before-version"),
    (b"G(T /hello HTTP/1.1\r\n" + H, 400, "bad_request", "method-not-token"),
    (b"BREW /hello HTTP/1.1\r\n" + H, 405, "method_not_allowed", "unknown-method"),
    (b"GET /hello http/1.1\r\n" + H, 400, "bad_request", "lower-case-version"),
    (b"GET /hello HTTP/2.0\r\n" + H, 400, "http_version_not_supported", "http2"),
    (b"GET /hello HTTP/0.9\r\n" + H, 400, "http_version_not_supported", "http09"),
    (b"GET hello HTTP/1.1\r\n" + H, 400, "bad_request", "target-no-slash"),
    (b"GET http://h/hello HTTP/1.1\r\n" + H, 400, "bad_request", "absolute-form-target"),
    (b"OPTIONS * HTTP/1.1\r\n" + H, 400, "bad_request", "asterisk-target"),
    (b"GET /he\x00llo HTTP/1.1\r\n" + H, 400, "bad_request", "nul-in-target"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A example\r\n", 400, "bad_request",
     "header-without-colon"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A : example\r\n", 400, "bad_request",
     "space-before-colon"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: one\r\n  two\r\n", 400, "bad_request",
     "obs-fold"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: one\r\n\ttwo: x\r\n", 400, "bad_request",
     "obs-fold-with-colon"),
    (b"GET /hello HTTP/1.1\r\n" + H + b": value\r\n", 400, "bad_request", "empty-header-name"),
    # control characters in field values: each a smuggling primitive behind a lenient proxy
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\nX-B: b\r\n", 400, "bad_request",
     "bare-lf-in-value"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\rX-B: b\r\n", 400, "bad_request",
     "bare-cr-in-value"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n", 400, "bad_request", "nul-in-value"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n", 400, "bad_request", "soh-in-value"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n", 400, "bad_request", "del-in-value"),
    (b"GET /hello HTTP/1.1\nHost: t\n", 400, "bad_request", "bare-lf-line-ends"),
    (b"GET /hello HTTP/1.1\r\n" + H + b"X-\x00A: b\r\n", 400, "bad_request", "nul-in-name"),
    # Host: exactly one on HTTP/1.1 (RFC 9112 3.2)
    (b"GET /hello HTTP/1.1\r\n", 400, "bad_request", "http11-without-host"),
    (b"GET /hello HTTP/1.1\r\n" + H + H, 400, "bad_request", "two-host-headers"),
    (b"GET /hello HTTP/1.0\r\n" + H + H, 400, "bad_request", "two-host-headers-http10"),
]


@pytest.mark.parametrize(("head", "status", "code"), [
    pytest.param(head + b"\r\n", status, code, id=name)
    for head, status, code, name in MALFORMED_HEADS])
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
    start = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: "
    return start + b"p" * (size - len(start)) + b"\r\n\r\n"


@pytest.mark.parametrize("data", [
    pytest.param(_head_of(HEAD_LIMIT + 1), id="complete-head-one-byte-over"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 2 * HEAD_LIMIT,
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
    b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999",
    b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked",
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
        request, length = server.read_head(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d" % n)
        assert length == n and request.headers["content-length"] == str(n)
    assert len(server._heads) <= http.HEAD_CACHE_SIZE
