"""The Prometheus provider against a real Prometheus scraping a small test exporter.

The fixtures start their own ``/usr/bin/prometheus`` (free port, temp config and TSDB, 1 s scrape
interval) and a prometheus_client exporter on another free loopback port whose gauges play a
baseline and a canary: the canary's latency is 1.5x the baseline's.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from policies.canary import parse
from tasks.canary.analysis import collect, judge, measure
from tasks.canary.judge import Classification, Verdict
from tasks.metrics import get_provider
from tasks.metrics.prometheus import PrometheusProvider

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
BASE_LATENCY = [0.100, 0.104, 0.097, 0.110, 0.093, 0.101, 0.106, 0.099, 0.095, 0.108]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    """A test exporter; a thread keeps moving its gauges like a live service would."""
    registry = CollectorRegistry()
    latency = Gauge("demo_latency_seconds", "request latency", ["track"], registry=registry)
    success = Gauge("demo_success_ratio", "share of good requests", ["track"], registry=registry)
    requests = Counter("demo_requests", "requests served", ["track"], registry=registry)
    success.labels(track="stable").set(0.999)
    success.labels(track="canary").set(0.995)
    stop = threading.Event()

    def play() -> None:
        for value in itertools.cycle(BASE_LATENCY):
            latency.labels(track="stable").set(value)
            latency.labels(track="canary").set(value * 1.5)
            requests.labels(track="stable").inc(9)
            requests.labels(track="canary").inc(1)
            if stop.wait(0.13):
                return

    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    player = threading.Thread(target=play, daemon=True)
    player.start()
    yield port
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prometheus(exporter: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(PROMETHEUS).exists() and shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed: apt-get install prometheus")
    binary = PROMETHEUS if Path(PROMETHEUS).exists() else str(shutil.which("prometheus"))
    home = tmp_path_factory.mktemp("prometheus")
    (home / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: exporter\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 30, process)
        # enough scrapes for a handful of samples per side
        query = 'count_over_time(demo_latency_seconds{track="canary"}[1m])'
        _wait(lambda: _value(url, query) >= 6, 30, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _value(url: str, query: str) -> float:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _wait(ready: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}")
        try:
            if ready():
                return
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"prometheus not ready within {timeout} s")


TEMPLATE = parse(
    {
        "selectors": {"baseline": {"track": "stable"}, "canary": {"track": "canary"}},
        "window_seconds": 60,
        "step_seconds": 1,
        "scores": {"pass": 95, "marginal": 75},
        "metrics": [
            {
                "name": "latency",
                "group": "latency",
                "query": "demo_latency_seconds{${selector}}",
                "direction": "increase",
            },
        ],
        "thresholds": [
            {
                "name": "success-rate",
                "query": "max(demo_success_ratio{${selector}})",
                "success_condition": "result >= 0.99",
            }
        ],
    }
)


def test_online_check(prometheus: str) -> None:
    status = get_provider("prometheus", address=prometheus).check_online()
    assert status.online, status.reason


def test_range_queries_give_baseline_and_canary_samples(prometheus: str) -> None:
    series = collect(get_provider("prometheus", address=prometheus), TEMPLATE)
    pair = series["latency"]
    assert pair.baseline.ok and pair.canary.ok, (pair.baseline.error, pair.canary.error)
    assert len(pair.baseline.values) >= 5 and len(pair.canary.values) >= 5
    assert set(pair.baseline.values) <= set(BASE_LATENCY)
    assert min(pair.canary.values) > max(pair.baseline.values)


def test_slow_canary_fails_the_analysis(prometheus: str) -> None:
    provider = get_provider("prometheus", address=prometheus)
    result = judge(
        TEMPLATE,
        collect(provider, TEMPLATE),
        {name: [m] for name, m in measure(provider, TEMPLATE).items()},
    )
    latency = result.metrics[0][1]
    assert latency.classification == Classification.HIGH, latency.reason
    assert result.verdict == Verdict.FAIL and result.score == 0.0
    assert result.thresholds[0].measured == 1 and result.thresholds[0].failed == 0


def test_instant_query_for_a_threshold_check(prometheus: str) -> None:
    provider = get_provider("prometheus", address=prometheus)
    measurement = measure(provider, TEMPLATE)["success-rate"]
    assert measurement.value == pytest.approx(0.995)
    counter = provider.query_instant('sum(demo_requests_total{track="canary"})')
    assert counter.value is not None and counter.value > 0


def test_a_rejected_query_is_an_error_value(prometheus: str) -> None:
    provider = get_provider("prometheus", address=prometheus)
    samples = provider.query("sum(", datetime.now(UTC), datetime.now(UTC), 1)
    assert samples.error is not None and "rejected the query (bad_data)" in samples.error
    many = provider.query_instant("demo_latency_seconds")
    assert many.error is not None and "returned 2 series" in many.error


def test_prometheus_down_is_an_error_measurement_not_an_exception() -> None:
    down = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert not down.check_online().online
    now = datetime.now(UTC)
    samples = down.query("up", now, now, 1)
    assert samples.error is not None and "unreachable" in samples.error
    measurement = down.query_instant("up")
    assert measurement.error is not None and "unreachable" in measurement.error
    result = judge(TEMPLATE, collect(down, TEMPLATE), {"success-rate": [measurement]})
    assert result.verdict == Verdict.ERROR
    assert "no metric could be judged" in result.reason
