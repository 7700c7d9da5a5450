"""Reading HTTP/1.1 requests off the wire with llhttp (Node's parser, through ``httptools``).

Why a library: a hand-written parser kept growing holes a well-kept one closed long ago (bare CR,
LF and NUL in field values, Unicode whitespace and 4300-digit numbers in ``Content-Length``, bare
LF in chunk extensions); llhttp in its strict mode (no leniency flag is ever set) refuses all of
them. What llhttp leaves to the server is checked here, once per distinct head: ``Host`` on
HTTP/1.1, ``Transfer-Encoding`` on HTTP/1.0, codings other than ``chunked``, a digit limit on
``Content-Length``, an exact request line, origin-form targets.

Every refusal of what a client sent is a 4xx, even where RFC 9110 suggests 501 (an unknown
transfer coding) or 505 (an HTTP version): a 5xx counts against a canary in the release's
analysis, so any client could otherwise make every canary roll back.

The connection (models/serve/http.py) finds the end of a head itself (the first CRLF CRLF) and
hands its bytes to :func:`parse_head`, a pure function of those bytes, so a head seen before is
answered from a cache without parsing. A ``Content-Length`` body is sliced from the buffer; a
chunked body is decoded by :class:`ChunkedBody`, an llhttp parser of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httptools

CRLF2 = b"\r\n\r\n"
#: Content-Length digits accepted (18 digits stay below 2**63; a body limit is far smaller)
MAX_LENGTH_DIGITS = 18
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: what llhttp's strict refusals mean, for the client that gets them
_HINTS = {
    "Invalid header value char": "field values must not hold control characters (CR, LF, NUL)",
    "Missing expected CR after header value": "lines end in CRLF, never a bare LF",
    "Missing expected LF after header value": "a bare CR is not a line end",
    "Invalid character in Content-Length": "Content-Length is ASCII digits only",
    "Content-Length overflow": f"Content-Length has at most {MAX_LENGTH_DIGITS} digits",
    "Duplicate Content-Length": "send Content-Length once",
    "Unexpected whitespace after header value": "folded lines (obs-fold) are not accepted",
    "Transfer-Encoding can't be present with Content-Length": "send only one of them",
}


class ProtocolError(Exception):
    """The request cannot be read: answered with ``status`` and the connection is closed."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def bad_request(detail: str) -> ProtocolError:
    return ProtocolError(400, "bad_request", detail)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    version: str
    #: lower-case names; a repeated header's values are joined with ", "
    headers: dict[str, str]
    body: bytes = b""
    #: ``time.perf_counter()`` when the whole request had arrived
    received: float = 0.0


class _Head:
    """httptools callbacks that collect one head."""

    __slots__ = ("complete", "fields", "url")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


def _refusal(line: bytes, exc: httptools.HttpParserError) -> ProtocolError:
    reason = str(exc)
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        method = line.split(b" ", 1)[0]
        if _TOKEN.match(method):
            return ProtocolError(405, "method_not_allowed", f"method {method[:20]!r} is not "
                                 "supported (use GET, HEAD or POST)")
    if reason == "Invalid HTTP version":
        return ProtocolError(400, "http_version_not_supported",
                             f"request line {line[:100]!r}: only HTTP/1.0 and 1.1 are served")
    hint = _HINTS.get(reason)
    return bad_request(f"malformed request head: {reason}" + (f" ({hint})" if hint else "")
                       + f"; request line {line[:100]!r}")


def parse_head(head: bytes) -> Request:
    """The request line and header fields (``head`` ends before its blank line); raises
    :class:`ProtocolError`. llhttp validates the bytes; the rest is the server's own policy."""
    collected = _Head()
    parser = httptools.HttpRequestParser(collected)
    line = head.split(b"\r\n", 1)[0]
    try:
        parser.feed_data(head + CRLF2)
    except httptools.HttpParserUpgrade:
        pass  # Upgrade is ignored (RFC 9110 7.8): the request is answered as plain HTTP/1.1
    except httptools.HttpParserError as exc:
        raise _refusal(line, exc) from exc
    if not collected.complete:  # pragma: no cover - llhttp ends every head at its blank line
        raise bad_request(f"incomplete request head {line[:100]!r}")
    method, version = parser.get_method(), parser.get_http_version()
    if line != b"%s %s HTTP/%s" % (method, collected.url, version.encode()):
        raise bad_request(f"malformed request line {line[:100]!r} (expected exactly "
                          "'METHOD /path HTTP/1.1', single spaces)")
    if version not in ("1.0", "1.1"):
        raise ProtocolError(400, "http_version_not_supported",
                            f"HTTP/{version} is not supported (use HTTP/1.1)")
    target = collected.url.decode("latin-1")
    if not target.startswith("/"):
        raise bad_request(f"request target {target[:100]!r} is not a path (expected origin "
                          "form, e.g. /predict)")
    headers: dict[str, str] = {}
    hosts = 0
    for raw_name, raw_value in collected.fields:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1").strip(" \t")
        hosts += name == "host"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if hosts > 1 or (version == "1.1" and hosts == 0):
        raise bad_request(f"an HTTP/{version} request needs exactly one Host header "
                          f"(found {hosts})")
    path, _, query = target.partition("?")
    return Request(method.decode("ascii"), path, query, version, headers)


def framing(request: Request, limit: int) -> int | None:
    """The body's length, or None for a chunked body; raises :class:`ProtocolError`."""
    headers = request.headers
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if request.version == "1.0":
            raise bad_request("Transfer-Encoding on an HTTP/1.0 request (HTTP/1.0 has no "
                              "chunked coding: send Content-Length)")
        if "content-length" in headers:
            raise bad_request("both Content-Length and Transfer-Encoding are set (send only "
                              "one)")
        if [c.strip().lower() for c in coding.split(",")] != ["chunked"]:
            raise ProtocolError(400, "unsupported_transfer_coding", f"Transfer-Encoding "
                                f"{coding[:40]!r} is not supported (send Content-Length or "
                                "chunked)")
        return None
    raw = headers.get("content-length")
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise bad_request(f"Content-Length {raw[:40]!r} is not one non-negative integer")
    if len(raw) > MAX_LENGTH_DIGITS:
        raise bad_request(f"Content-Length has {len(raw)} digits (at most {MAX_LENGTH_DIGITS})")
    length = int(raw)
    if length > limit:
        raise ProtocolError(413, "body_too_large", f"body is {length} bytes (limit {limit})")
    return length


class ChunkedBody:
    """Decodes one chunked body with an llhttp parser of its own, into one buffer.

    The connection's buffer may hold the next pipelined request right behind the body, and
    llhttp does not say where a message ended. A chunked message (strict: CRLF line ends) can
    only end on the last byte of a CRLF CRLF, so the buffer is fed up to each such point and no
    further once the message is complete; elsewhere all of it is fed, and consumed, at once.
    Limits: ``limit`` body bytes (413) and ``max_chunks`` chunks (400: tiny chunks cost a call
    each, and 1-byte chunks used to cost 50 bytes of memory per byte of body).
    """

    def __init__(self, head: bytes, limit: int, max_chunks: int) -> None:
        self.limit, self.max_chunks = limit, max_chunks
        self.body = bytearray()
        self.chunks = 0
        self.done = False
        self._began = False
        self._tail = b""  # the last bytes fed (a CRLF CRLF may straddle two feeds)
        self._parser = httptools.HttpRequestParser(self)
        self._feed(head + CRLF2)

    # ---- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._began:  # pragma: no cover - feeding stops where a message can end
            raise bad_request("data after the end of the chunked body")
        self._began = True

    def on_chunk_header(self) -> None:
        self.chunks += 1
        if self.chunks > self.max_chunks:
            raise bad_request(f"chunked body has more than {self.max_chunks} chunks (send "
                              "larger chunks, or Content-Length)")

    def on_body(self, data: bytes) -> None:
        if len(self.body) + len(data) > self.limit:
            raise ProtocolError(413, "body_too_large",
                                f"body exceeds {self.limit} bytes (chunked)")
        self.body += data

    def on_message_complete(self) -> None:
        self.done = True

    # ---- feeding -------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the message is complete; an Upgrade is ignored as in parse_head
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, ProtocolError):
                raise exc.__context__ from None
            raise  # pragma: no cover - our callbacks raise nothing else
        except httptools.HttpParserError as exc:
            hint = " (chunk lines end in CRLF; sizes are hex digits)" if "CR" in str(exc) or \
                "size" in str(exc) else ""
            raise bad_request(f"malformed chunked body: {exc}{hint}") from exc

    def _end(self, buf: bytearray) -> int:
        """Bytes of ``buf`` up to the first point where the message could end, or -1."""
        tail = self._tail
        for k in (3, 2, 1):
            if len(tail) >= k and tail[-k:] + bytes(buf[:4 - k]) == CRLF2:
                return 4 - k
        at = buf.find(CRLF2)
        return -1 if at < 0 else at + 4

    def feed(self, buf: bytearray) -> bytes | None:
        """Consume this body's bytes from ``buf``; the body once its last chunk is in."""
        while buf and not self.done:
            end = self._end(buf)
            take = len(buf) if end < 0 else end
            piece = bytes(buf[:take])
            del buf[:take]
            self._tail = (self._tail + piece[-3:])[-3:]
            self._feed(piece)
        return bytes(self.body) if self.done else None
