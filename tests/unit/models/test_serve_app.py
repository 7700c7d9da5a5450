"""The handlers in-process (our HTTP server on a free port, httpx) on a small scikit-learn model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from models.serve.app import ServerState, build_server
from models.serve.config import ServeConfig
from models.serve.metrics import ServerMetrics
from models.serve.runtime import OnnxModel
from models.validate import onnx_predict
from tasks.train import Trained

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def run_app(config: ServeConfig, scenario: Scenario, *, load: bool = True,
            metrics: ServerMetrics | None = None) -> None:
    async def main() -> None:
        state = ServerState(config) if metrics is None else ServerState(config, metrics=metrics)
        if load:
            state.load()
            state.start_batching()
        server = build_server(state)
        await server.start("127.0.0.1", 0)
        host, port = server.addresses[0]
        try:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                await scenario(client)
        finally:
            await server.shutdown(5)
            if state.batcher is not None:
                await state.batcher.stop()

    asyncio.run(main())


def test_predictions_match_in_process_ort(sklearn_onnx: Path, sklearn_trained: Trained) -> None:
    x = sklearn_trained.split.x_test[:40]
    labels, proba = onnx_predict(sklearn_onnx, x)

    async def scenario(client: httpx.AsyncClient) -> None:
        async def one(i: int) -> None:
            resp = await client.post("/predict", json={"inputs": x[i:i + 2].tolist()})
            assert resp.status_code == 200
            data = resp.json()
            assert data["model"] == "digits-unit"
            assert data["outputs"]["label"] == labels[i:i + 2].tolist()
            np.testing.assert_allclose(data["outputs"]["probabilities"], proba[i:i + 2],
                                       atol=1e-6)
        await asyncio.gather(*[one(i) for i in range(0, 40, 2)])

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario)


def _mlflow_bodies(name: str, rows: list[list[float]]) -> list[object]:
    """The tensor formats ``mlflow models serve`` accepts on /invocations."""
    return [
        {"inputs": rows},
        {"inputs": {name: rows}},
        {"instances": rows},
        {"instances": [{name: row} for row in rows]},
        {"dataframe_split": {"columns": [str(i) for i in range(len(rows[0]))], "data": rows}},
    ]


def test_invocations_speaks_mlflows_tensor_formats(sklearn_onnx: Path,
                                                   sklearn_trained: Trained) -> None:
    x = sklearn_trained.split.x_test[:3]
    labels, proba = onnx_predict(sklearn_onnx, x)
    name = OnnxModel(sklearn_onnx).input_name

    async def scenario(client: httpx.AsyncClient) -> None:
        for payload in _mlflow_bodies(name, x.tolist()):
            resp = await client.post("/invocations", json=payload)
            assert resp.status_code == 200, (payload.keys(), resp.text)  # type: ignore[attr-defined]
            predictions = resp.json()["predictions"]
            assert predictions["label"] == labels.tolist()
            np.testing.assert_allclose(predictions["probabilities"], proba, atol=1e-6)

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario)


@pytest.mark.parametrize(("payload", "code"), [
    ({"inputs": {"wrong": [[0.0] * 64]}}, "wrong_input_name"),
    ({"instances": [{"wrong": [0.0] * 64}]}, "wrong_input_name"),
    ({"inputs": [[0.0] * 64], "instances": [[0.0] * 64]}, "missing_inputs"),
    ({"dataframe_split": [[0.0] * 64]}, "missing_inputs"),
    ({"dataframe_records": [{"a": 1}]}, "missing_inputs"),
    ({"inputs": [[0.0] * 63]}, "wrong_shape"),
])
def test_invocations_refuses_with_422_naming_the_problem(sklearn_onnx: Path, payload: object,
                                                         code: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        resp = await client.post("/invocations", json=payload)
        assert (resp.status_code, resp.json()["error"]) == (422, code), resp.text

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario)


BAD = [
    (b"{oops", 400, "malformed_json"),
    (b'{"inputs": []}', 422, "empty_batch"),
    (b'{"inputs": [[1, 2, 3]]}', 422, "wrong_shape"),
    (json.dumps({"inputs": [["a"] * 64]}).encode(), 422, "wrong_dtype"),
    (json.dumps({"inputs": [[1.0] * 63 + [float("nan")]]}).encode(), 422, "non_finite"),
    (b'{"inputs": [' + b"0," * 600 + b"0]}", 413, "body_too_large"),
]


@pytest.mark.parametrize(("raw", "status", "code"), BAD)
def test_bad_requests_get_4xx_json(sklearn_onnx: Path, raw: bytes, status: int, code: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        resp = await client.post("/predict", content=raw,
                                 headers={"Content-Type": "application/json"})
        assert resp.status_code == status
        assert resp.json()["error"] == code
        assert resp.json()["detail"]

    run_app(ServeConfig(model_uri=str(sklearn_onnx), max_body_bytes=1000), scenario)


HOSTILE = [
    b"[" * 200_000 + b"]" * 200_000,  # a RecursionError used to be answered 503 "not ready"
    b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"inputs": [[' + b"9" * 5000 + b"]]}",
    b'{"inputs": [[' + b"9" * 400 + b"]]}",
    '{"inputs": [[1]]}'.encode("utf-16"),
    b"\xef\xbb\xbf{}",
]


def test_hostile_bodies_get_4xx_and_never_5xx(sklearn_onnx: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for raw in HOSTILE:
            resp = await client.post("/predict", content=raw)
            assert 400 <= resp.status_code < 500, (raw[:30], resp.text)
            assert resp.json()["detail"]
        assert (await client.get("/readyz")).status_code == 200

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario)


def test_health_ready_model_and_metrics(sklearn_onnx: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        described = (await client.get("/model")).json()
        assert described["input"]["shape"] == ["batch", 64]
        await client.post("/predict", json={"inputs": [[0.0] * 64]})
        await client.post("/predict", content=b"nope")
        text = (await client.get("/metrics")).text
        version = described["version"]
        labels = f'model="digits-unit",version="{version}"'
        assert f'model_server_requests_total{{code="200",{labels}}} 1.0' in text
        assert f'model_server_requests_total{{code="400",{labels}}} 1.0' in text
        assert f"model_server_request_duration_seconds_count{{{labels}}} 2.0" in text
        assert f"model_server_batch_size_count{{{labels}}} 1.0" in text
        assert "model_server_fault_injection_error_ratio 0.0" in text
        missing = await client.get("/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        wrong = await client.get("/predict")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario)


def test_fault_injection_answers_500_and_adds_latency(sklearn_onnx: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        resp = await client.post("/predict", json={"inputs": [[0.0] * 64]})
        assert loop.time() - began >= 0.05
        assert resp.status_code == 500 and resp.json()["error"] == "injected_fault"
        text = (await client.get("/metrics")).text  # Prometheus' base unit: seconds
        assert "model_server_fault_injection_latency_seconds 0.05" in text

    config = ServeConfig(model_uri=str(sklearn_onnx), fault_latency_ms=50, fault_error_ratio=1)
    run_app(config, scenario)


def test_not_ready_until_loaded(sklearn_onnx: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get("/readyz")).status_code == 503
        resp = await client.post("/predict", json={"inputs": [[0.0] * 64]})
        assert resp.status_code == 503 and resp.json()["error"] == "not_ready"

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario, load=False)


def test_request_histogram_counts_each_bound_inclusively() -> None:
    """The hot-path histogram is Prometheus' own: a value on a bound counts in that bucket."""
    from models.serve.metrics import LATENCY_BUCKETS, ServerMetrics

    metrics = ServerMetrics()
    metrics.bind("m", "1", "u")
    for seconds in (LATENCY_BUCKETS[0], LATENCY_BUCKETS[0] * 1.01, 99.0):
        metrics.observe_request(200, seconds)
    text = metrics.render().decode()
    labels = 'model="m",version="1"'
    assert f'model_server_request_duration_seconds_bucket{{le="0.0001",{labels}}} 1.0' in text
    assert f'model_server_request_duration_seconds_bucket{{le="0.00025",{labels}}} 2.0' in text
    assert f'model_server_request_duration_seconds_bucket{{le="10.0",{labels}}} 2.0' in text
    assert f'model_server_request_duration_seconds_bucket{{le="+Inf",{labels}}} 3.0' in text
    assert f'model_server_requests_total{{code="200",{labels}}} 3.0' in text
    assert f"model_server_batch_size_count{{{labels}}} 0.0" in text  # bound, not yet observed
