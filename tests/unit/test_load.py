from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from suite.errors import ConfigError
from suite.load import LoadGenerator


def server(fail_every: int = 0) -> ThreadingHTTPServer:
    count = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                count["n"] += 1
                n = count["n"]
            status = 500 if fail_every and n % fail_every == 0 else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return None

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_steady_rate_and_every_failure_counted():
    srv = server(fail_every=5)
    url = f"http://127.0.0.1:{srv.server_address[1]}/predict"
    report = LoadGenerator(url, rate=50, duration=1.0, rows=[[0.0] * 4]).start().wait()
    srv.shutdown()
    assert report.sent == 50
    assert report.by_status == {"200": 40, "500": 10}
    assert (report.ok, report.failed) == (40, 10)
    assert "10 failed" in report.summary()


def test_connection_errors_are_failures_not_exceptions():
    srv = server()
    port = srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    report = LoadGenerator(f"http://127.0.0.1:{port}/p", rate=20, duration=0.5,
                           rows=[[1.0]]).start().wait()
    assert report.sent == 10 and report.failed == 10 and report.errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 0}, "rate 0/s"), ({"duration": 0}, "duration 0s"), ({"url": "ftp://x"}, "not an"),
     ({"rows": []}, "no input rows")],
)
def test_bad_arguments(kwargs, message):
    args = {"url": "http://127.0.0.1:1/p", "rate": 1, "duration": 1, "rows": [[1.0]]} | kwargs
    with pytest.raises(ConfigError, match=message):
        LoadGenerator(**args)
