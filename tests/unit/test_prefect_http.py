"""suite.prefect_http against a small real HTTP server that answers a scripted list of codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from suite import prefect_http

#: the Authorization header of each request the scripted server saw
AUTH_SEEN: list[str | None] = []


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[int], list[str]]]:
    """(base URL, codes still to answer — then 200 —, request lines seen)."""
    monkeypatch.setattr(prefect_http, "DELAYS", (0.01, 0.01, 0.01, 0.01))
    codes: list[int] = []
    seen: list[str] = []
    AUTH_SEEN.clear()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.requestline)
            AUTH_SEEN.append(self.headers.get("Authorization"))
            code = codes.pop(0) if codes else 200
            body = b'{"ok": true}' if code == 200 else b'{"exception_message": "busy"}'
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(prefect_http, "_auth", {})
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/api", codes, seen
    server.shutdown()


def test_a_locked_database_is_ridden_out(scripted: tuple[str, list[int], list[str]]) -> None:
    api, codes, seen = scripted
    codes += [503, 429, 503]
    resp = prefect_http.request(api, "POST", "/flow_runs/filter", json={})
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert seen == ["POST /api/flow_runs/filter HTTP/1.1"] * 4


def test_the_last_503_is_returned_after_the_retries(
    scripted: tuple[str, list[int], list[str]],
) -> None:
    api, codes, seen = scripted
    codes += [503] * 10
    assert prefect_http.request(api, "POST", "/x").status_code == 503
    assert len(seen) == 1 + len(prefect_http.DELAYS)


@pytest.mark.parametrize("code", [404, 409, 422, 500])
def test_other_answers_are_not_retried(scripted: tuple[str, list[int], list[str]],
                                       code: int) -> None:
    api, codes, seen = scripted
    codes.append(code)
    assert prefect_http.request(api, "POST", "/x").status_code == code
    assert len(seen) == 1


def test_the_auth_string_given_for_an_api_goes_with_every_call_to_it(
    scripted: tuple[str, list[int], list[str]],
) -> None:
    api, codes, _ = scripted
    codes.append(503)
    prefect_http.use_auth(api + "/", "suite:pw")  # a trailing slash names the same API
    assert prefect_http.request(api, "POST", "/flow_runs/filter", json={}).status_code == 200
    assert AUTH_SEEN == ["Basic c3VpdGU6cHc="] * 2  # the retry too


def test_a_worker_sends_the_auth_string_of_its_environment(
    scripted: tuple[str, list[int], list[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, _, _ = scripted
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "suite:from-env")
    assert prefect_http.auth_string(api) == "suite:from-env"


def test_no_auth_string_known_sends_no_header(
    scripted: tuple[str, list[int], list[str]], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api, _, _ = scripted
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))  # another platform's API: nothing to read
    assert prefect_http.headers(api) == {}
    assert prefect_http.request(api, "POST", "/x").status_code == 200
    assert AUTH_SEEN == [None]
