"""Property-based fuzzing of the HTTP/1.1 protocol (models/serve/http.py + wire.py): arbitrary
request bytes, cut into arbitrary pieces, fed straight into a connection's ``data_received`` on
a fake transport (no sockets, so thousands of cases run in seconds).

Properties: no exception escapes the protocol; every answer is a well-formed HTTP/1.1 response
with a status below 500; a refused request closes (or lingers) the connection; the buffer never
holds more than a head, a body and one piece. The cases are mutations of a corpus of valid and
hostile requests plus raw bytes; the run is bounded by ``max_examples`` and a deadline.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

hypothesis = pytest.importorskip(
    "hypothesis", reason="hypothesis is not installed (.venv/bin/pip install hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from models.serve.http import HttpServer, Limits, _Connection  # noqa: E402
from tests.unit.models.http_harness import echo, hello, info  # noqa: E402

LIMITS = Limits(max_body_bytes=256, max_head_bytes=512, max_connections=8)
_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")

CORPUS = [
    b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",  # CL.TE
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    b"5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",  # TE.CL
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n"
    b"\r\n0\r\n\r\n",  # TE.TE
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /hello HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",  # obs-fold
    b"GET /hello HTTP/1.1\r\nHost: t\r\nX: a\nY: b\r\n\r\n",
    b"GET /hello HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffffffffff\r\n",
    b"GET /info?x=1 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
]
_SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"0", b"\xff",
            b"\x0b", b"Content-Length: 9\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n"]


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = self.eof = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.eof, "written after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@st.composite
def request_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 3))
        if kind == 0 and data:  # delete a span
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == 1:  # insert a special token
            data[at:at] = draw(st.sampled_from(_SPECIAL))
        elif kind == 2 and at < len(data):  # flip a byte
            data[at] = draw(st.integers(0, 255))
        else:  # insert raw bytes
            data[at:at] = draw(st.binary(max_size=16))
    if draw(st.booleans()):  # a pipelined second request
        data += draw(st.sampled_from(CORPUS))
    return bytes(data)


def _responses(out: bytes) -> list[int]:
    statuses, at = [], 0
    while at < len(out):
        match = _STATUS.match(out, at)
        assert match, f"not an HTTP/1.1 response at byte {at}: {out[at:at + 60]!r}"
        end = out.index(b"\r\n\r\n", at) + 4
        length = re.search(rb"\r\nContent-Length: (\d+)\r\n", out[at:end])
        statuses.append(int(match.group(1)))
        at = end + (int(length.group(1)) if length else 0)
    return statuses


@pytest.fixture(scope="module")
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=request_bytes(), cuts=st.lists(st.integers(1, 64), max_size=8))
def test_no_request_bytes_break_the_protocol(loop: asyncio.AbstractEventLoop, data: bytes,
                                             cuts: list[int]) -> None:
    async def scenario() -> None:
        server = HttpServer(LIMITS)
        server.route("GET", "/hello", hello)
        server.route("POST", "/echo", echo)
        server.route("GET", "/info", info)
        conn = _Connection(server)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        at = 0
        for cut in [*cuts, len(data)]:
            piece = data[at:at + cut]
            at += len(piece)
            if piece:
                conn.data_received(piece)
                assert len(conn.buf) <= LIMITS.max_head_bytes + LIMITS.max_body_bytes + 64 + 8
        statuses = _responses(bytes(transport.out).replace(b"HTTP/1.1 100 Continue\r\n\r\n",
                                                           b""))
        assert all(s < 500 for s in statuses), statuses  # a 5xx would count against a canary
        if any(s in (400, 408, 413, 431) for s in statuses):  # 404/405 of the router keep it
            assert transport.closed or transport.eof  # a refusal ends the connection
        conn.close()
        conn.connection_lost(None)

    loop.run_until_complete(scenario())
