"""HAProxy from the platform: runtime weights shift real traffic with no reload and survive a
restart; its Prometheus exporter answers."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from suite.haproxy import BACKEND, RuntimeApi
from suite.platform import manager
from suite.settings import Settings

pytestmark = pytest.mark.integration


def serve(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def backends() -> Iterator[dict[str, int]]:
    servers = {"a": serve("a"), "b": serve("b")}
    yield {k: s.server_address[1] for k, s in servers.items()}
    for s in servers.values():
        s.shutdown()


def api(settings: Settings) -> RuntimeApi:
    return RuntimeApi(settings.dir("haproxy", "admin.sock"))


def wait_up(rt: RuntimeApi, names: set[str]) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = {s.name: s.op_state for s in rt.servers(BACKEND)}
        if all(states.get(n) == "UP" for n in names):
            return
        time.sleep(0.2)
    raise AssertionError(f"servers not UP: {states}")


def split(settings: Settings, n: int = 200) -> collections.Counter[str]:
    url = settings.url("haproxy")
    with httpx.Client(timeout=5) as client:
        return collections.Counter(client.get(url).text for _ in range(n))


def test_weights_shift_traffic_and_survive_restart(platform: Settings, backends):
    rt = api(platform)
    for slot in rt.servers(BACKEND):  # whatever an earlier test left routed
        rt.set_server(BACKEND, slot.name, weight=0, state="maint")
    rt.set_server(BACKEND, "stable1", address="127.0.0.1", port=backends["a"], weight=90,
                  state="ready")
    rt.set_server(BACKEND, "canary1", address="127.0.0.1", port=backends["b"], weight=10,
                  state="ready")
    wait_up(rt, {"stable1", "canary1"})
    counts = split(platform)
    assert counts["a"] + counts["b"] == 200
    assert 10 <= counts["b"] <= 30, counts  # ~10 % with round robin

    rt.set_server(BACKEND, "canary1", weight=0)
    assert split(platform, 50) == {"a": 50}

    manager.down(platform, only=["haproxy"])
    manager.up(platform, only=["haproxy"])
    rt = api(platform)
    state = {s.name: s for s in rt.servers(BACKEND)}
    assert (state["stable1"].port, state["stable1"].weight) == (backends["a"], 90)
    assert state["canary1"].weight == 0
    wait_up(rt, {"stable1"})
    assert split(platform, 20) == {"a": 20}

    metrics = httpx.get(platform.url("haproxy_metrics") + "/metrics", timeout=5).text
    assert 'haproxy_server_http_responses_total{proxy="app",server="stable1",code="2xx"}' in metrics
    for name in ("stable1", "canary1"):
        rt.set_server(BACKEND, name, state="maint")


def test_unknown_server_is_a_deploy_error(platform: Settings):
    from suite.errors import DeployError

    with pytest.raises(DeployError, match="No such server"):
        api(platform).set_server(BACKEND, "nope9", weight=1)
