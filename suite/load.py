"""Steady prediction traffic: requests at a fixed rate for a bounded time, every failure counted.

Used by `suite load`, the demo and the end-to-end tests (which assert that the stable version
lost no request while a canary was killed). Requests are scheduled at ``start + i / rate`` and
sent by a small thread pool, so a slow answer does not lower the offered rate.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from suite.errors import ConfigError

MAX_DURATION = 3600.0


@dataclass(frozen=True)
class LoadReport:
    sent: int
    ok: int
    failed: int
    by_status: dict[str, int]
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.duration_s if self.duration_s else 0.0

    def summary(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
        text = (f"sent {self.sent} in {self.duration_s:.1f}s ({self.achieved_rate:.1f}/s): "
                f"{self.ok} ok, {self.failed} failed [{codes}] p50 {self.p50_ms:.1f} ms "
                f"p99 {self.p99_ms:.1f} ms")
        if self.errors:
            text += " errors: " + ", ".join(f"{k} x{v}" for k, v in self.errors.items())
        return text


class LoadGenerator:
    def __init__(self, url: str, rate: float, duration: float,
                 rows: Sequence[Sequence[float]] | None, concurrency: int = 8,
                 timeout: float = 5.0, batch: int = 1, host: str = "",
                 body: Mapping[str, object] | None = None) -> None:
        """``rows``: POST them as predictions; ``body``: POST this JSON document; neither: plain
        GETs of ``url`` (any HTTP service).
        ``host``: the Host header, which picks the service on the platform's release address."""
        if not 0 < rate <= 2000:
            raise ConfigError(f"rate {rate}/s is outside (0, 2000]")
        if not 0 < duration <= MAX_DURATION:
            raise ConfigError(f"duration {duration}s is outside (0, {MAX_DURATION:.0f}]")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url {url!r} is not an http(s) URL")
        if rows is not None and not rows:
            raise ConfigError("no input rows to send")
        self.url, self.rate, self.duration = url, rate, duration
        self.headers = {"Host": host} if host else {}
        self.bodies: list[bytes | None] = (
            [json.dumps(body).encode()] if body is not None else [None]) if rows is None else [
            json.dumps({"inputs": [list(r) for r in rows[i:i + batch]]}).encode()
            for i in range(0, len(rows), batch)]
        self.concurrency, self.timeout = concurrency, timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._codes: collections.Counter[str] = collections.Counter()
        self._errors: collections.Counter[str] = collections.Counter()
        self._latencies: list[float] = []
        self._started = 0.0
        self._ended = 0.0

    def _one(self, client: httpx.Client, body: bytes | None) -> None:
        began = time.perf_counter()
        try:
            if body is None:
                resp = client.get(self.url, headers=self.headers)
            else:
                resp = client.post(self.url, content=body, headers={
                    **self.headers, "Content-Type": "application/json"})
            key = str(resp.status_code)
            error = None
        except httpx.HTTPError as exc:
            key, error = "error", type(exc).__name__
        elapsed = (time.perf_counter() - began) * 1000
        with self._lock:
            self._codes[key] += 1
            self._latencies.append(elapsed)
            if error:
                self._errors[error] += 1

    def _run(self) -> None:
        self._started = time.monotonic()
        limits = httpx.Limits(max_connections=self.concurrency)
        with httpx.Client(timeout=self.timeout, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            i = 0
            while not self._stop.is_set():
                due = self._started + i / self.rate
                if due - self._started >= self.duration:
                    break
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                pool.submit(self._one, client, self.bodies[i % len(self.bodies)])
                i += 1
        self._ended = time.monotonic()

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, name="suite-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        return self.wait()

    def wait(self) -> LoadReport:
        if self._thread is not None:
            self._thread.join()
        return self.report()

    def report(self) -> LoadReport:
        with self._lock:
            codes = dict(self._codes)
            lat = sorted(self._latencies)
            errors = dict(self._errors)
        sent = sum(codes.values())
        ok = sum(v for k, v in codes.items() if k.isdigit() and 200 <= int(k) < 400)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

        end = self._ended or time.monotonic()
        return LoadReport(sent, ok, sent - ok, codes, max(0.0, end - self._started),
                          pct(0.5), pct(0.99), errors)


def run(url: str, rate: float, duration: float, rows: Sequence[Sequence[float]] | None = None,
        concurrency: int = 8, host: str = "") -> LoadReport:
    """``rows``: predictions to POST; None: GETs of ``url``."""
    return LoadGenerator(url, rate, duration, rows, concurrency, host=host).start().wait()
