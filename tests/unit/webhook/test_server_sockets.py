"""The HTTP server against real sockets: a silent client is cut after the socket timeout, and idle
connections over the handler bound neither spawn threads nor keep a real request from an answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from suite.webhook.replay import DeliveryLog
from suite.webhook.server import BoundedServer, WebhookApp, make_server
from suite.webhook.trigger import Started

TIMEOUT = 1.0


def serve(tmp_path: Path, timeout: float) -> Iterator[BoundedServer]:
    app = WebhookApp(secrets=lambda _: "s", trigger=lambda e, s: Started(flow_run_id="r"),
                     deliveries=DeliveryLog(tmp_path / "deliveries.sqlite3"),
                     registrations=lambda: [])
    srv = make_server(app, "127.0.0.1", 0, workers=2, timeout=timeout)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BoundedServer]:
    yield from serve(tmp_path, TIMEOUT)


@pytest.fixture
def patient_server(tmp_path: Path) -> Iterator[BoundedServer]:
    """A socket timeout far longer than the client's: only shedding can answer in time."""
    yield from serve(tmp_path, 120.0)


def connect(srv: BoundedServer) -> socket.socket:
    host, port = srv.server_address[:2]
    return socket.create_connection((str(host), int(port)), timeout=10)


def test_a_client_that_sends_nothing_is_closed_by_the_server_within_the_timeout(server):
    with connect(server) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""  # blocks until the server closes the connection
        assert time.monotonic() - started < TIMEOUT + 3


def test_a_client_that_stops_mid_head_is_closed_too(server):
    with connect(server) as sock:
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < TIMEOUT + 3


def test_idle_sockets_over_the_bound_do_not_keep_a_real_request_from_its_answer(patient_server):
    server = patient_server
    threads_before = threading.active_count()
    idle = [connect(server) for _ in range(server.workers + 2)]
    try:
        host, port = server.server_address[:2]
        # the idle sockets would hold every handler for 120 s; the client gives up after 10
        resp = httpx.get(f"http://{host}:{port}/healthz", timeout=10)
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
        # no thread per idle socket beyond the bound
        assert threading.active_count() - threads_before <= server.workers
        # the oldest idle sockets were the ones shed: the server closed them
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()


def test_a_request_being_sent_is_not_shed_for_a_new_connection(patient_server):
    server = patient_server
    with connect(server) as first:
        first.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # head not finished yet
        others = [connect(server) for _ in range(server.workers + 1)]
        try:
            first.sendall(b"\r\n")
            head = first.recv(4096)
            assert head.startswith(b"HTTP/1.0 200"), head[:200]
        finally:
            for sock in others:
                sock.close()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_a_body_shorter_than_its_content_length_is_400(server):
    with connect(server) as sock:
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)
        data = read_all(sock)
        assert data.startswith(b"HTTP/1.0 400") and b"body ended after 2 of the 100" in data


def test_non_ascii_signature_bytes_over_the_wire_get_a_400_json_answer(server):
    with connect(server) as sock:
        body = b"{}"
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                     b"X-Hub-Signature-256: sha256=\xc3\xa9\xff\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n" + body)
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.0 400"), data[:200]
    assert b"non-ASCII" in data and b"application/json" in data
