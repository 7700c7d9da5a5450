"""Prometheus metrics of the model server, in a registry of its own (no process-global state).

Every series carries ``model`` and ``version`` so a canary and its baseline are told apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: a request takes ~0.1-1 ms here when the server is not loaded: histogram_quantile interpolates
#: inside one bucket, so the canary judge needs several bounds below a millisecond to see a shift
#: there (with 0.5 ms as the first bound, every quiet p50 read as 0.25 ms)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01,
                   0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: one ONNX Runtime call: microseconds for small models, up to seconds for large ones
INFERENCE_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LABELS = ("model", "version")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("model_server_requests", "Predict requests by HTTP status code",
                                (*LABELS, "code"), registry=r)
        self.latency = Histogram("model_server_request_duration_seconds",
                                 "Predict request latency, body read to response",
                                 LABELS, buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("model_server_batch_size",
                                    "Rows per ONNX Runtime call (dynamic micro-batching)",
                                    LABELS, buckets=BATCH_BUCKETS, registry=r)
        self.inference = Histogram("model_server_inference_duration_seconds",
                                   "Duration of one ONNX Runtime call", LABELS,
                                   buckets=INFERENCE_BUCKETS, registry=r)
        self.inflight = Gauge("model_server_inflight_requests", "Predict requests in progress",
                              registry=r)
        self.ready = Gauge("model_server_ready", "1 when the model is loaded and not draining",
                           registry=r)
        self.info = Gauge("model_server_model_info", "The model being served", (*LABELS, "uri"),
                          registry=r)
        self.fault_latency = Gauge("model_server_fault_injection_latency_seconds",
                                   "FAULT INJECTION: latency added to every request", registry=r)
        self.fault_ratio = Gauge("model_server_fault_injection_error_ratio",
                                 "FAULT INJECTION: share of requests answered 500", registry=r)
        self._labels: tuple[str, str] = ("", "")
        self._codes: dict[int, Counter] = {}
        # label lookups cost more than the observations: resolved once, when the model is known
        self._latency: Histogram | None = None
        self._batch: Histogram | None = None
        self._inference: Histogram | None = None

    def bind(self, model: str, version: str, uri: str) -> None:
        """Label every later observation with the loaded model."""
        self._labels = (model, version)
        self._codes.clear()
        self._latency = self.latency.labels(model, version)
        self._batch = self.batch_size.labels(model, version)
        self._inference = self.inference.labels(model, version)
        self.info.labels(model, version, uri).set(1)

    def observe_request(self, code: int, seconds: float) -> None:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self.requests.labels(*self._labels, str(code))
        child.inc()
        (self._latency or self.latency.labels(*self._labels)).observe(seconds)

    def observe_batch(self, rows: int, seconds: float) -> None:
        if self._batch is not None and self._inference is not None:
            self._batch.observe(rows)
            self._inference.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
