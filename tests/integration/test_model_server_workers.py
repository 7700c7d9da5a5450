"""``python -m models.serve --workers 2`` as real processes: both workers answer on one port, any
worker's ``/metrics`` counts every request, a dead worker takes the server down with a non-zero
status (nothing restarts it silently), and SIGTERM stops them all.

The model is a file (no MLflow): what is under test is the process model, not the loader, which
tests/integration/test_model_server.py covers.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from models.kinds import TrainConfig
from tasks.train import export_model, train_model
from tests.conftest import REPO, free_port
from tests.integration.test_model_server import wait_ready

pytestmark = pytest.mark.integration
ROW = [0.0] * 64
READY_TIMEOUT_S = 60.0


@dataclass
class Workers:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def workers(self) -> list[psutil.Process]:
        """The server processes (the spawn machinery's resource tracker is not one)."""
        return [p for p in psutil.Process(self.proc.pid).children()
                if "resource_tracker" not in " ".join(p.cmdline())]

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trained = train_model(TrainConfig(kind="sklearn-logreg"))
    return export_model(trained, tmp_path_factory.mktemp("workers"), "digits-workers").path


def start(model: Path, log: Path, workers: int = 2, port: int | None = None) -> Workers:
    port = free_port() if port is None else port
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "models.serve", "--model-uri", str(model), "--port", str(port),
             "--workers", str(workers)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Workers(f"http://127.0.0.1:{port}", port, proc, log)
    if wait_ready(server.url, proc, log, READY_TIMEOUT_S):
        return server
    server.stop()
    raise AssertionError(f"server not ready in time: {log.read_text()[-3000:]}")


@pytest.fixture()
def two(model: Path, tmp_path: Path) -> Iterator[Workers]:
    server = start(model, tmp_path / "server.log")
    yield server
    if server.proc.poll() is None:
        assert server.stop() == 0, server.log.read_text()[-3000:]


def fresh() -> httpx.Client:
    """A client that opens a new connection per request (the kernel picks a worker for each)."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)


def counter(text: str, name: str) -> float:
    values = [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)]
    return sum(values)


def test_two_workers_listen_and_answer_on_one_port(two: Workers) -> None:
    workers = two.workers()
    assert len(workers) == 2
    for worker in workers:
        ports = {c.laddr.port for c in worker.net_connections("tcp") if c.status == "LISTEN"}
        assert ports == {two.port}, f"worker {worker.pid} listens on {ports}"
    clients = [httpx.Client(base_url=two.url, timeout=10) for _ in range(16)]
    try:
        for client in clients:  # 16 kept-alive connections, spread by the kernel
            assert client.post("/predict", json={"inputs": [ROW]}).status_code == 200
        holding = [worker.pid for worker in workers
                   if any(c.status == "ESTABLISHED" and c.laddr.port == two.port
                          for c in worker.net_connections("tcp"))]
        assert len(holding) == 2, f"only {holding} of {[w.pid for w in workers]} got connections"
    finally:
        for client in clients:
            client.close()


def test_metrics_of_any_worker_sum_every_worker(two: Workers) -> None:
    n = 120
    with fresh() as client:
        for _ in range(n):
            assert client.post(two.url + "/predict", json={"inputs": [ROW]}).status_code == 200
        for _ in range(12):  # each scrape on a new connection: any worker may answer it
            text = client.get(two.url + "/metrics").text
            assert counter(text, "model_server_requests_total") == n
            assert counter(text, "model_server_batch_size_sum") == n  # one row each
            assert counter(text, "model_server_request_duration_seconds_count") == n
            assert counter(text, "model_server_ready") == 1


def test_a_killed_worker_makes_the_parent_exit_nonzero(two: Workers) -> None:
    victim, other = two.workers()
    victim.kill()
    code = two.proc.wait(30)
    assert code != 0
    other.wait(10)  # the survivor is stopped too: no replica serving with half its workers
    assert "exited with status" in two.log.read_text()


def test_sigterm_stops_every_worker_and_exits_zero(two: Workers) -> None:
    workers = two.workers()
    assert two.stop() == 0
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_port_zero_gives_every_worker_the_same_port(model: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "models.serve", "--model-uri", str(model), "--port", "0",
             "--workers", "2"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        ports: list[str] = []
        while len(ports) < 2 and time.monotonic() < deadline and proc.poll() is None:
            ports = re.findall(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
            time.sleep(0.1)
        assert len(ports) == 2 and ports[0] == ports[1] != "0", log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
