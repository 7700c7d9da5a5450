"""hello: a small WSGI service (greetings by name) with a readiness path.

Two knobs exist for rollback demos and tests, read from the environment at start:
``HELLO_DELAY_MS`` (added latency) and ``HELLO_ERROR_RATIO`` (share of 500 answers).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

DELAY_S = float(os.environ.get("HELLO_DELAY_MS", "0")) / 1000.0
ERROR_RATIO = float(os.environ.get("HELLO_ERROR_RATIO", "0"))
GREETING = os.environ.get("HELLO_GREETING", "hello")
VERSION = os.environ.get("SUITE_VERSION", "dev")

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def _json(start: StartResponse, status: str, body: dict[str, object]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def greet(name: str) -> str:
    name = name.strip()[:64] or "world"
    return f"{GREETING}, {name}!"


def application(environ: dict[str, object], start: StartResponse) -> Iterable[bytes]:
    path = str(environ.get("PATH_INFO", "/"))
    if path == "/healthz":
        return _json(start, "200 OK", {"status": "ok", "version": VERSION})
    if path in ("/", "/hello"):
        if DELAY_S:
            time.sleep(DELAY_S)
        if ERROR_RATIO and random.random() < ERROR_RATIO:  # noqa: S311 - fault injection
            return _json(start, "500 Internal Server Error", {"error": "injected fault"})
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        return _json(start, "200 OK", {"message": greet(query.get("name", [""])[0]),
                                       "version": VERSION})
    return _json(start, "404 Not Found", {"error": f"no route {path}"})
