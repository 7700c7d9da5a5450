"""The model server as a real process: loaded from MLflow by alias, under concurrent load,
fed every class of bad input, with fault injection, and stopped while requests are in flight.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from models import registry
from models.data import Split
from models.kinds import TrainConfig
from models.validate import onnx_predict
from policies import model as model_policy
from suite.settings import Settings
from tasks.train import export_model, register_model, train_model, validate_model
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration
NAME = "digits-serve"


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def start_server(args: list[str], env: dict[str, str], log: Path, ready: bool = True) -> Server:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "models.serve", "--port", str(port), *args],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    if ready and not wait_ready(server.url, proc, log, 120):
        server.stop()
        raise AssertionError(f"server not ready in time: {log.read_text()[-3000:]}")
    return server


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> bool:
    """Whether the server at ``url`` answers /readyz 200 within ``timeout``; a server that
    exits first is an AssertionError carrying the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class Served:
    version: str
    onnx: Path
    split: Split


@pytest.fixture(scope="module")
def served(platform: Settings, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """A model registered under its own name and promoted to champion (scikit-learn: fast to
    train; the server does not depend on the kind, the registry tests cover the torch one)."""
    tmp = tmp_path_factory.mktemp("serve")
    trained = train_model(TrainConfig(kind="sklearn-logreg"))
    info = export_model(trained, tmp / "build", NAME)
    validated = validate_model(trained, info, model_policy.load(), None)
    reg = register_model(platform.mlflow_uri, NAME, trained, info, validated, "test")
    registry.promote(platform, NAME, reg.version, actor="pytest", reason="server tests")
    onnx = registry.download_onnx(platform.mlflow_uri, NAME, reg.version, tmp / "download")
    return Served(version=reg.version, onnx=onnx, split=trained.split)


@pytest.fixture(scope="module")
def server(served: Served, platform: Settings, platform_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**platform_env, "MLFLOW_TRACKING_URI": platform.mlflow_uri}
    srv = start_server(["--model-uri", f"models:/{NAME}@champion", "--max-wait-ms", "2"], env,
                       tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    assert srv.stop() == 0


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if labels else name
    pattern = rf"^{re.escape(series)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_server_serves_the_champion_version_from_mlflow(server: Server, served: Served) -> None:
    ready = httpx.get(server.url + "/readyz").json()
    assert ready == {"status": "ready", "model": NAME, "version": served.version}


def test_concurrent_load_matches_in_process_ort(server: Server, served: Served) -> None:
    x = served.split.x_test
    labels, proba = onnx_predict(served.onnx, x)
    chunks = [(i, min(i + 1 + i % 3, len(x))) for i in range(0, len(x), 3)]

    async def load() -> list[tuple[int, int, dict[str, object]]]:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            sem = asyncio.Semaphore(32)

            async def one(lo: int, hi: int) -> tuple[int, int, dict[str, object]]:
                async with sem:
                    resp = await client.post("/predict", json={"inputs": x[lo:hi].tolist()})
                    assert resp.status_code == 200, resp.text
                    return lo, hi, resp.json()

            return await asyncio.gather(*[one(lo, hi) for lo, hi in chunks])

    for lo, hi, body in asyncio.run(load()):
        outputs = body["outputs"]
        assert isinstance(outputs, dict)
        assert outputs["label"] == labels[lo:hi].tolist()
        np.testing.assert_allclose(outputs["probabilities"], proba[lo:hi], atol=1e-5)
    text = httpx.get(server.url + "/metrics").text
    labels_ = {"model": NAME, "version": served.version}
    rows = metric(text, "model_server_batch_size_sum", **labels_)
    calls = metric(text, "model_server_batch_size_count", **labels_)
    assert rows > calls, "no request shared an ONNX Runtime call: batching did not happen"
    assert metric(text, "model_server_requests_total", code="200", **labels_) >= len(chunks)


ROW = [0.0] * 64
BAD = [
    ("malformed_json", b'{"inputs": [[0, 1', 400),
    ("missing_inputs", json.dumps({"rows": [ROW]}).encode(), 422),
    ("empty_batch", json.dumps({"inputs": []}).encode(), 422),
    ("wrong_shape", json.dumps({"inputs": [ROW[:10]]}).encode(), 422),
    ("wrong_shape", json.dumps({"inputs": ROW}).encode(), 422),
    ("wrong_dtype", json.dumps({"inputs": [["x"] * 64]}).encode(), 422),
    ("wrong_dtype", json.dumps({"inputs": [[None] * 64]}).encode(), 422),
    ("non_finite", json.dumps({"inputs": [[*ROW[:63], float("nan")]]}).encode(), 422),
    ("non_finite", json.dumps({"inputs": [[*ROW[:63], float("inf")]]}).encode(), 422),
    ("too_many_rows", json.dumps({"inputs": [ROW] * 1025}).encode(), 413),
    ("body_too_large", b'{"inputs": [' + b" " * (2 << 20) + b"]}", 413),
    # hostile bodies: a RecursionError used to be answered 503 (retried by HAProxy, counted
    # against the canary)
    ("malformed_json", b"[" * 100_000 + b"]" * 100_000, 400),
    ("malformed_json", b'{"inputs": [[' + b"9" * 5000 + b"]]}", 400),
    ("malformed_json", '{"inputs": [[0.0]]}'.encode("utf-16"), 400),
]


@pytest.mark.parametrize(("code", "body", "status"), BAD, ids=[b[0] for b in BAD])
def test_every_bad_input_class_gets_its_4xx(
    server: Server, code: str, body: bytes, status: int,
) -> None:
    resp = httpx.post(server.url + "/predict", content=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code
    assert resp.json()["detail"]


SMUGGLED = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


def test_a_smuggled_request_is_refused_and_never_answered(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(SMUGGLED)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after its one answer
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1 ") == 1, data[:300]
    assert b"\r\nDate: " in data and b"\r\nConnection: close\r\n" in data


def test_invocations_answers_mlflow_clients(server: Server, served: Served) -> None:
    x = served.split.x_test[:4]
    labels, _ = onnx_predict(served.onnx, x)
    resp = httpx.post(server.url + "/invocations", json={"instances": x.tolist()})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"]["label"] == labels.tolist()


def test_bad_input_never_hurt_the_server(server: Server, served: Served) -> None:
    assert httpx.get(server.url + "/readyz").status_code == 200
    text = httpx.get(server.url + "/metrics").text
    labels = {"model": NAME, "version": served.version}
    assert metric(text, "model_server_requests_total", code="500", **labels) == 0
    assert metric(text, "model_server_requests_total", code="422", **labels) >= 1
    assert 'model_server_model_info{model="digits-serve"' in text
    assert metric(text, "model_server_fault_injection_error_ratio") == 0


def test_fault_injection_from_environment(served: Served, platform_env: dict[str, str],
                                          tmp_path: Path) -> None:
    env = {**platform_env, "SERVE_FAULT_ERROR_RATIO": "1", "SERVE_FAULT_LATENCY_MS": "100"}
    srv = start_server(["--model-uri", str(served.onnx)], env, tmp_path / "faulty.log")
    try:
        began = time.monotonic()
        resp = httpx.post(srv.url + "/predict", json={"inputs": [ROW]})
        assert time.monotonic() - began >= 0.1
        assert resp.status_code == 500 and resp.json()["error"] == "injected_fault"
        assert metric(httpx.get(srv.url + "/metrics").text,
                      "model_server_fault_injection_error_ratio") == 1
    finally:
        assert srv.stop() == 0
    assert "FAULT INJECTION ENABLED" in (tmp_path / "faulty.log").read_text()


def test_graceful_shutdown_drains_in_flight_requests(
    served: Served, platform_env: dict[str, str], tmp_path: Path,
) -> None:
    srv = start_server(["--model-uri", str(served.onnx), "--fault-latency-ms", "1500"],
                       platform_env, tmp_path / "drain.log")

    def call(i: int) -> int:
        return httpx.post(srv.url + "/predict", json={"inputs": [served.split.x_test[i].tolist()]},
                          timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(call, i) for i in range(8)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until all 8 sleep on the injected latency
            text = httpx.get(srv.url + "/metrics").text
            if metric(text, "model_server_inflight_requests") == 8:
                break
            time.sleep(0.02)
        else:  # SIGTERM before all 8 arrived would test something else (refused connections)
            raise AssertionError(f"8 requests never in flight at once:\n{text[-2000:]}")
        srv.proc.send_signal(signal.SIGTERM)
        codes = [f.result() for f in futures]
    assert codes == [200] * 8
    assert srv.proc.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/healthz", timeout=2)
    assert "draining in-flight requests" in (tmp_path / "drain.log").read_text()


@pytest.mark.parametrize(("uri", "message"), [
    ("/nonexistent/model.onnx", "neither an existing .onnx file"),
    (f"models:/{NAME}@no-such-alias", "cannot be loaded from MLflow"),
])
def test_unloadable_model_exits_nonzero_with_the_reason(
    uri: str, message: str, platform: Settings, platform_env: dict[str, str], tmp_path: Path,
) -> None:
    env = {**platform_env, "MLFLOW_TRACKING_URI": platform.mlflow_uri}
    srv = start_server(["--model-uri", uri], env, tmp_path / "bad.log", ready=False)
    assert srv.proc.wait(120) == 1
    assert message in (tmp_path / "bad.log").read_text()
