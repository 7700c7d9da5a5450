"""HTTP handlers: ``POST /predict``, ``GET /healthz``, ``/readyz``, ``/metrics``, ``/model``.

Every refusal is JSON ``{"error": code, "detail": message}``: 4xx for anything the client sent
(never a 500), 503 while loading or after a failed load, 500 only for an injected fault or a bug.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from models.serve import jsonio, loader
from models.serve.batcher import MicroBatcher
from models.serve.config import ServeConfig
from models.serve.errors import BadInput
from models.serve.inputs import parse_body
from models.serve.metrics import CONTENT_TYPE, ServerMetrics
from models.serve.runtime import META_MODEL_NAME, OnnxModel

log = logging.getLogger("models.serve")


@dataclass
class ServerState:
    config: ServeConfig
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    model: OnnxModel | None = None
    source: loader.ModelSource | None = None
    batcher: MicroBatcher | None = None
    name: str = ""
    version: str = ""
    phase: str = "loading"  # loading | ready | draining | failed
    #: requests read or parsed but not yet handed to the batcher
    arriving: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def load(self) -> None:
        """Blocking: resolve, download and open the model (run in a thread at start-up)."""
        source = loader.resolve(self.config.model_uri, self.config.tracking_uri)
        model = OnnxModel(source.path, self.config.threads)
        self.name = (self.config.model_name or source.name or model.metadata.get(META_MODEL_NAME)
                     or source.path.stem)
        self.version = self.config.model_version or source.version
        self.source, self.model = source, model

    def start_batching(self) -> None:
        assert self.model is not None
        self.metrics.bind(self.name, self.version, self.config.model_uri)
        self.batcher = MicroBatcher(
            self.model.run, max_batch_size=self.config.max_batch_size,
            max_wait_ms=self.config.max_wait_ms, pending=lambda: self.arriving,
            on_batch=self.metrics.observe_batch, offload=self.config.offload_inference,
        )
        self.batcher.start()
        self.phase = "ready"
        self.metrics.ready.set(1)


STATE = web.AppKey("state", ServerState)


def error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise BadInput(413, "body_too_large", f"body is {length} bytes (limit {limit})")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadInput(413, "body_too_large", f"body exceeds {limit} bytes") from exc


async def predict(request: web.Request) -> web.Response:
    state = request.app[STATE]
    config = state.config
    began = time.perf_counter()
    state.metrics.inflight.inc()
    try:
        response = await _predict(state, config, request)
    except BadInput as exc:
        response = error(exc.status, exc.code, exc.detail)
    finally:
        state.metrics.inflight.dec()
    state.metrics.observe_request(response.status, time.perf_counter() - began)
    return response


async def _predict(state: ServerState, config: ServeConfig, request: web.Request
                   ) -> web.Response:
    if state.batcher is None or state.model is None:
        return error(503, "not_ready", f"model is {state.phase}")
    if config.fault_latency_ms > 0:
        await asyncio.sleep(config.fault_latency_ms / 1000.0)
    if config.fault_error_ratio > 0 and state.rng.random() < config.fault_error_ratio:
        return error(500, "injected_fault",
                     f"fault injection is on (error ratio {config.fault_error_ratio:g})")
    state.arriving += 1
    try:
        body = await _read_body(request, config.max_body_bytes)
        x = parse_body(body, state.model.feature_shape, config.max_rows)
    finally:
        state.arriving -= 1
    outputs = await state.batcher.submit(x)
    payload = {"model": state.name, "version": state.version, "outputs": outputs}
    return web.Response(body=jsonio.dumps(payload), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"status": "ok", "phase": state.phase})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {"status": state.phase, "model": state.name, "version": state.version}
    return web.json_response(body, status=200 if state.phase == "ready" else 503)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(body=state.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def describe(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.model is None:
        return error(503, "not_ready", f"model is {state.phase}")
    return web.json_response({"model": state.name, "version": state.version,
                              "uri": state.config.model_uri, **state.model.describe(),
                              "max_batch_size": state.config.max_batch_size,
                              "max_wait_ms": state.config.max_wait_ms})


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = (exc.reason or "error").lower().replace(" ", "_")
        return error(exc.status, code, f"{request.method} {request.path}: {exc.reason}")
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error(500, "internal_error", "unexpected server error (see the server log)")


async def _stop_batcher(app: web.Application) -> None:
    state = app[STATE]
    if state.batcher is not None:
        await state.batcher.stop()


def build_app(state: ServerState) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=state.config.max_body_bytes)
    app[STATE] = state
    app.router.add_post("/predict", predict)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/model", describe)
    app.on_cleanup.append(_stop_batcher)
    state.metrics.fault_latency.set(state.config.fault_latency_ms)
    state.metrics.fault_ratio.set(state.config.fault_error_ratio)
    return app
