"""HTTP handlers: ``POST /predict``, ``POST /invocations`` (MLflow's scoring protocol, so that
clients of ``mlflow models serve`` work unchanged), ``GET /healthz``, ``/readyz``, ``/metrics``,
``/model``.

Every refusal is JSON ``{"error": code, "detail": message}``: 4xx for anything the client sent
(never a 500), 503 while loading or after a failed load, 500 only for an injected fault or a bug.

``/predict`` is validated where it is read and queued on the micro-batcher; the answer is a
future completed by the batcher's callback, so a request costs no task of its own (only the
fault-injection path, off by default, runs as a coroutine).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from models.serve import jsonio, loader
from models.serve.batcher import MicroBatcher, Outputs
from models.serve.config import ServeConfig
from models.serve.errors import BadInput
from models.serve.http import HttpServer, Limits, Request, Response, error_response, json_response
from models.serve.inputs import parse_body, parse_mlflow_body
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
    #: the listener (its count of requests still arriving tells the batcher to wait for them)
    http: HttpServer | None = None
    rng: random.Random = field(default_factory=random.Random)

    def load(self) -> None:
        """Blocking: resolve, download and open the model (run in a thread at start-up)."""
        source = loader.resolve(self.config.model_uri, self.config.tracking_uri)
        model = OnnxModel(source.path, self.config.threads)
        self.name = (self.config.model_name or source.name or model.metadata.get(META_MODEL_NAME)
                     or source.path.stem)
        self.version = self.config.model_version or source.version
        self.source, self.model = source, model

    def _arriving(self) -> int:
        return self.http.reading if self.http is not None else 0

    def start_batching(self) -> None:
        assert self.model is not None
        self.metrics.bind(self.name, self.version, self.config.model_uri)
        self.batcher = MicroBatcher(
            self.model.run, max_batch_size=self.config.max_batch_size,
            max_wait_ms=self.config.max_wait_ms, pending=self._arriving,
            on_batch=self.metrics.observe_batch, offload=self.config.offload_inference,
        )
        self.batcher.start()
        self.phase = "ready"
        self.metrics.set_ready(True)


class Handlers:
    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.metrics = state.metrics
        self.loop = loop

    # ---- /predict ------------------------------------------------------------------------------

    def predict(self, request: Request) -> Response | asyncio.Future[Response]:
        state = self.state
        self.metrics.begin_request()
        if state.batcher is None or state.model is None:
            return self._done(request, self._not_ready())
        if state.config.faults_enabled:
            return asyncio.ensure_future(self._predict_with_faults(request))
        return self._predict(request)

    def invocations(self, request: Request) -> Response | asyncio.Future[Response]:
        """MLflow's ``/invocations``: its tensor formats in, ``{"predictions": ...}`` out."""
        return self.predict(request)

    def _predict(self, request: Request) -> Response | asyncio.Future[Response]:
        state = self.state
        model = state.model
        assert state.batcher is not None and model is not None
        answer: asyncio.Future[Response] = self.loop.create_future()

        def deliver(result: Outputs | BaseException) -> None:
            if not answer.done():
                answer.set_result(self._done(request, self._outputs(request, result)))

        try:
            if request.path == "/invocations":
                x = parse_mlflow_body(request.body, model.input_name, model.feature_shape,
                                      state.config.max_rows)
            else:
                x = parse_body(request.body, model.feature_shape, state.config.max_rows)
        except BadInput as exc:
            return self._done(request, error_response(exc.status, exc.code, exc.detail))
        try:
            state.batcher.enqueue(x, deliver)
        except RuntimeError:  # the batcher stopped: shutting down (never the client's input)
            return self._done(request, self._not_ready())
        return answer

    def _outputs(self, request: Request, result: Outputs | BaseException) -> Response:
        if isinstance(result, BaseException):
            log.error("inference failed for %s %s", request.method, request.path,
                      exc_info=result)
            return error_response(500, "internal_error",
                                  "inference failed (see the server log)")
        if request.path == "/invocations":
            return Response(200, jsonio.dumps({"predictions": result}))
        payload = {"model": self.state.name, "version": self.state.version, "outputs": result}
        return Response(200, jsonio.dumps(payload))

    async def _predict_with_faults(self, request: Request) -> Response:
        config = self.state.config
        if config.fault_latency_ms > 0:
            await asyncio.sleep(config.fault_latency_ms / 1000.0)
        if config.fault_error_ratio > 0 and self.state.rng.random() < config.fault_error_ratio:
            return self._done(request, error_response(
                500, "injected_fault",
                f"fault injection is on (error ratio {config.fault_error_ratio:g})"))
        result = self._predict(request)
        return result if isinstance(result, Response) else await result

    def _not_ready(self) -> Response:
        return error_response(503, "not_ready", f"model is {self.state.phase}")

    def _done(self, request: Request, response: Response) -> Response:
        self.metrics.end_request(response.status, time.perf_counter() - request.received)
        return response

    # ---- the rest ------------------------------------------------------------------------------

    def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "phase": self.state.phase})

    def readyz(self, request: Request) -> Response:
        state = self.state
        body = {"status": state.phase, "model": state.name, "version": state.version}
        if state.phase == "ready" and not self.metrics.ready:
            body["status"] = "waiting_for_workers"  # each worker loads its own copy
        return json_response(body, status=200 if body["status"] == "ready" else 503)

    def render_metrics(self, request: Request) -> Response:
        return Response(200, self.metrics.render(), content_type=CONTENT_TYPE)

    def describe(self, request: Request) -> Response:
        state = self.state
        if state.model is None:
            return self._not_ready()
        return json_response({"model": state.name, "version": state.version,
                              "uri": state.config.model_uri, **state.model.describe(),
                              "max_batch_size": state.config.max_batch_size,
                              "max_wait_ms": state.config.max_wait_ms})


def build_server(state: ServerState) -> HttpServer:
    """The listener with its routes; ``state.http`` points at it (call it in the event loop)."""
    config = state.config
    server = HttpServer(Limits(max_body_bytes=config.max_body_bytes,
                               max_connections=config.max_connections,
                               keepalive_timeout_s=config.keepalive_timeout_s,
                               head_timeout_s=config.head_timeout_s))
    handlers = Handlers(state, asyncio.get_running_loop())
    server.route("POST", "/predict", handlers.predict)
    server.route("POST", "/invocations", handlers.invocations)
    server.route("GET", "/healthz", handlers.healthz)
    server.route("GET", "/readyz", handlers.readyz)
    server.route("GET", "/metrics", handlers.render_metrics)
    server.route("GET", "/model", handlers.describe)
    state.http = server
    state.metrics.fault_latency.set(state.config.fault_latency_ms / 1000.0)  # Prometheus: s
    state.metrics.fault_ratio.set(state.config.fault_error_ratio)
    return server
