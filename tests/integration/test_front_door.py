"""The release front door: the platform's HAProxy in front of a real model server process.

The hostile corpus of the server's own tests (CL.TE, TE.CL, TE.TE, duplicated and padded
Content-Length, obs-fold, bare CR/LF/NUL, oversized heads, chunk tricks, TE on HTTP/1.0, a
pipelined flood) is sent through HAProxy, each case hiding a valid ``POST /predict`` behind the
first request. HAProxy and the replica must agree on where every request ends: the replica
answers 200 to exactly as many predictions as the client receives through HAProxy, so a request
HAProxy did not see is never executed. And one source address sending faster than the
configured rate gets 429 from HAProxy itself.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from models.kinds import TrainConfig
from suite.haproxy import Route, RouteStore, RuntimeApi, Server, backend_name
from suite.platform.services.haproxy import HaproxyService
from suite.settings import Settings
from tasks.targets.local import HaproxyRouter
from tasks.train import export_model, train_model
from tests.integration.test_haproxy import wait_up
from tests.integration.test_model_server import Server as ModelServer
from tests.integration.test_model_server import start_server

pytestmark = pytest.mark.integration
HOST = b"front.localhost"
SERVER = "stable-1-f00d00"
BODY = json.dumps({"inputs": [[0.0] * 64]}).encode()
HIDDEN = (b"POST /predict HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Type: application/json\r\n"
          b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
POST = b"POST /predict HTTP/1.1\r\nHost: " + HOST + b"\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _cl(n: int) -> bytes:
    return str(n).encode()


# (name, bytes, the statuses the client gets, whether the connection closes after them), as
# HAProxy 2.6 answers. A 400 followed by a 200 on an open connection is the replica's answer to
# the first request's empty body: HAProxy framed it (Content-Length 0, a bare LF taken as a line
# end, the fold or NUL inside a field it forwards normalised), so what follows is an ordinary
# pipelined request HAProxy sees and answers itself. Every other case HAProxy refuses at once.
CORPUS = [
    ("cl_te", POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
     [400], True),
    ("te_cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: " + _cl(len(HIDDEN) + 5)
     + b"\r\n\r\n0\r\n\r\n" + HIDDEN, [400], True),
    ("te_te_two_codings", POST + b"Transfer-Encoding: chunked\r\nTransfer-encoding: identity\r\n"
     b"\r\n" + _chunk(HIDDEN) + b"0\r\n\r\n", [400], True),
    ("te_space_before_colon", POST + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n" + HIDDEN, [400], True),
    ("te_unknown_coding", POST + b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n" + HIDDEN, [400], True),
    ("te_tab", POST + b"Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
     + HIDDEN, [400], True),
    ("te_identity_chunked", POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"
     + HIDDEN, [422], True),
    ("cl_duplicated", POST + b"Content-Length: 0\r\nContent-Length: " + _cl(len(HIDDEN))
     + b"\r\n\r\n" + HIDDEN, [400], True),
    ("cl_list", POST + b"Content-Length: 0, " + _cl(len(HIDDEN)) + b"\r\n\r\n" + HIDDEN,
     [400], True),
    ("cl_plus_sign", POST + b"Content-Length: +0\r\n\r\n" + HIDDEN, [400], True),
    ("cl_vertical_tab", POST + b"Content-Length: \x0b0\r\n\r\n" + HIDDEN, [400], True),
    ("cl_nbsp", POST + b"Content-Length: 0\xa0\r\n\r\n" + HIDDEN, [400], True),
    ("cl_overflow", POST + b"Content-Length: " + b"9" * 40 + b"\r\n\r\n" + HIDDEN, [400], True),
    ("obs_fold_hiding_te", POST + b"Content-Length: 0\r\nX: a\r\n Transfer-Encoding: chunked"
     b"\r\n\r\n" + HIDDEN, [400, 200], False),
    ("bare_lf", POST + b"X: a\nContent-Length: 0\r\n\r\n" + HIDDEN, [400, 200], False),
    ("bare_cr", POST + b"X: a\rContent-Length: 0\r\n\r\n" + HIDDEN, [400], True),
    ("nul_in_value", POST + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n" + HIDDEN, [400, 200], False),
    ("oversized_head", POST + b"X: " + b"a" * 20000 + b"\r\nContent-Length: 0\r\n\r\n" + HIDDEN,
     [400], True),
    ("chunk_size_overflow", POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n"
     + HIDDEN, [400], True),
    ("chunk_ext_bare_lf", POST + b"Transfer-Encoding: chunked\r\n\r\n0;a\n\r\n" + HIDDEN,
     [400, 200], False),
    ("chunk_ext_quoted_crlf", POST + b"Transfer-Encoding: chunked\r\n\r\n0;a=\"\r\n\r\n\"\r\n\r\n"
     + HIDDEN, [400, 400], True),
    ("te_on_http10", b"POST /predict HTTP/1.0\r\nHost: " + HOST + b"\r\nTransfer-Encoding: "
     b"chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + HIDDEN, [400], True),
    ("pipelined_flood", HIDDEN * 50, [200] * 50, False),
]
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)\r\n", re.IGNORECASE)


@dataclass(frozen=True)
class Exchange:
    statuses: list[int]
    predictions: int  # 200 answers carrying outputs
    closed: bool


def exchange(port: int, data: bytes, expect: int) -> Exchange:
    """Send ``data`` on one connection; read until ``expect`` answers arrived or it closes."""
    out, closed = b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        while len(answers(out)[0]) < expect:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
        if not closed:
            sock.settimeout(0.5)  # the answers are in: does HAProxy close after them?
            try:
                rest = sock.recv(65536)
                closed, out = rest == b"", out + rest
            except TimeoutError:
                closed = False
    statuses, predictions = answers(out)
    return Exchange(statuses, predictions, closed)


def answers(out: bytes) -> tuple[list[int], int]:
    statuses, predictions, at = [], 0, 0
    while (found := _STATUS.match(out, at)) is not None:
        end = out.find(b"\r\n\r\n", at)
        if end < 0:
            break
        length = _LENGTH.search(out, at, end + 2)
        body_end = end + 4 + (int(length.group(1)) if length else 0)
        if body_end > len(out):
            break
        statuses.append(int(found.group(1)))
        predictions += found.group(1) == b"200" and b'"outputs"' in out[end + 4:body_end]
        at = body_end
    return statuses, predictions


@pytest.fixture(scope="module")
def replica(platform: Settings, platform_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """A model server process (a scikit-learn digits model from a file: no registry needed) as
    the only server of a route ``front.localhost`` of the platform's HAProxy."""
    tmp = tmp_path_factory.mktemp("front")
    info = export_model(train_model(TrainConfig(kind="sklearn-logreg")), tmp / "model", "front")
    srv = start_server(["--model-uri", str(info.path)], platform_env, tmp / "server.log")
    routes = RouteStore(platform.dir("haproxy", "routes"))
    routes.put(Route("front", HOST.decode(), "/readyz"))
    HaproxyService(platform).reload()
    port = int(srv.url.rsplit(":", 1)[1])
    HaproxyRouter(platform).publish(Route("front", HOST.decode(), "/readyz",
                                          live=(Server(SERVER, port, 100),)))
    wait_up(RuntimeApi(platform.dir("haproxy", "admin.sock")), backend_name("front"), {SERVER})
    yield srv
    HaproxyRouter(platform).withdraw("front")
    routes.remove("front")
    HaproxyService(platform).reload()
    assert srv.stop() == 0


def _predictions_served(srv: ModelServer) -> float:
    text = httpx.get(srv.url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("model_server_requests_total{") and 'code="200"' in line)


@pytest.mark.parametrize(("name", "data", "statuses", "closes"), CORPUS,
                         ids=[c[0] for c in CORPUS])
def test_hostile_request_through_haproxy_never_desynchronises_the_replica(
        platform: Settings, replica: ModelServer, name: str, data: bytes, statuses: list[int],
        closes: bool) -> None:
    before = _predictions_served(replica)
    got = exchange(platform.port("haproxy"), data, expect=len(statuses))
    assert (got.statuses, got.closed) == (statuses, closes), name
    # every prediction the replica made is one HAProxy framed and answered: a request hidden
    # inside another (smuggled past HAProxy) would be served here without an answer there
    assert _predictions_served(replica) - before == got.predictions, (name, got)


def test_replica_is_healthy_after_the_corpus(platform: Settings, replica: ModelServer) -> None:
    states = {s.name: s.op_state for s in
              RuntimeApi(platform.dir("haproxy", "admin.sock")).servers(backend_name("front"))}
    assert states == {SERVER: "UP"}
    resp = httpx.post(platform.url("haproxy") + "/predict", json={"inputs": [[0.0] * 64]},
                      headers={"Host": HOST.decode()}, timeout=10)
    assert resp.status_code == 200 and "outputs" in resp.json()
    text = httpx.get(replica.url + "/metrics", timeout=5).text
    served = [line for line in text.splitlines() if line.startswith("model_server_requests")]
    assert served and not [line for line in served if 'code="5' in line], served


def test_one_source_over_the_rate_limit_gets_429_from_haproxy(platform: Settings,
                                                              tmp_path: Path) -> None:
    """2 requests/s over 10 s: the 21st request within the window is refused with 429 and
    Retry-After by HAProxy (an unrouted host: no replica is involved at all)."""
    limited = replace(platform, rate_limit=2)
    HaproxyService(limited).reload()
    try:
        with httpx.Client(base_url=platform.url("haproxy"), timeout=5,
                          headers={"Host": "nobody.localhost"}) as client:
            answers_ = [client.get("/") for _ in range(25)]
        codes = [a.status_code for a in answers_]
        assert codes[:20] == [404] * 20 and set(codes[21:]) == {429}, codes
        refused = answers_[-1]
        assert refused.headers["retry-after"] == "10"
        assert "more than 2 per second" in refused.json()["error"]
    finally:
        HaproxyService(platform).reload()  # the session's limit again (and a fresh table)
    assert httpx.get(platform.url("haproxy"), headers={"Host": "nobody.localhost"},
                     timeout=5).status_code == 404
