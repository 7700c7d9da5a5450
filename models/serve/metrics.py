"""Prometheus metrics of the model server, in a registry of its own (no process-global state).

Every series carries ``model`` and ``version`` so a canary and its baseline are told apart. The
per-request counters live in a :class:`~models.serve.tally.Tally`: private to a single-process
server, shared by the workers of a multi-process one, whose ``/metrics`` then reports the sum
over every worker (whichever of them answers the scrape).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from models.serve import tally as t
from models.serve.tally import BATCH_BUCKETS, INFERENCE_BUCKETS, LATENCY_BUCKETS, Tally

__all__ = ["BATCH_BUCKETS", "CONTENT_TYPE", "INFERENCE_BUCKETS", "LATENCY_BUCKETS",
           "ServerMetrics"]

LABELS = ("model", "version")
CONTENT_TYPE = CONTENT_TYPE_LATEST
_HISTOGRAMS = (("latency", t.LATENCY_AT, LATENCY_BUCKETS),
               ("batch_size", t.BATCH_AT, BATCH_BUCKETS),
               ("inference", t.INFERENCE_AT, INFERENCE_BUCKETS))


def _buckets(cells: list[float], at: int, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    cumulative, out = 0.0, []
    for k, bound in enumerate((*bounds, float("inf"))):
        cumulative += cells[at + k]
        out.append((floatToGoString(bound), cumulative))
    return out


class _HotPath(Collector):
    """The per-request series: ``prometheus_client``'s Counter and Histogram take a lock and
    walk the buckets on every observation (about 4 µs a request here, a tenth of the server's
    Python time per request); these are cells of the tally rendered as the same families."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def series(self) -> dict[tuple[str, str], list[float]]:
        """Each labelled series summed over the slots (the unbound one under empty labels)."""
        sums: dict[tuple[str, str], list[float]] = {}
        for slot in range(self.tally.slots):
            cells = self.tally.slot_cells(slot)
            named = self.tally.labels(slot)
            parts = [(("", ""), t.UNBOUND_AT)] + ([(named, t.BOUND_AT)] if named else [])
            for labels, at in parts:
                total = sums.setdefault(labels, [0.0] * t.SERIES_CELLS)
                for i, value in enumerate(cells[at:at + t.SERIES_CELLS]):
                    total[i] += value
        return sums

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("model_server_requests",
                                       "Predict requests by HTTP status code",
                                       labels=(*LABELS, "code"))
        families = {
            "latency": HistogramMetricFamily("model_server_request_duration_seconds",
                                             "Predict request latency, body read to response",
                                             labels=LABELS),
            "batch_size": HistogramMetricFamily(
                "model_server_batch_size", "Rows per ONNX Runtime call (dynamic micro-batching)",
                labels=LABELS),
            "inference": HistogramMetricFamily("model_server_inference_duration_seconds",
                                               "Duration of one ONNX Runtime call",
                                               labels=LABELS),
        }
        for labels, cells in self.series().items():
            for k in range(t.CODES):
                if cells[k]:
                    requests.add_metric([*labels, str(t.FIRST_CODE + k)], cells[k])
            for attr, at, bounds in _HISTOGRAMS:
                counts = cells[at:at + len(bounds) + 1]
                if any(counts) or labels != ("", ""):  # a bound model: even at 0
                    families[attr].add_metric(list(labels), _buckets(cells, at, bounds),
                                              cells[at + len(bounds) + 1])
        yield requests
        yield from families.values()
        yield GaugeMetricFamily("model_server_inflight_requests", "Predict requests in progress",
                                value=self.tally.inflight())
        yield GaugeMetricFamily("model_server_ready", "1 when the model is loaded and not "
                                "draining (in every worker)",
                                value=1.0 if self.tally.all_ready() else 0.0)


class ServerMetrics:
    def __init__(self, tally: Tally | None = None) -> None:
        self.tally = tally or Tally.local()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(_HotPath(self.tally))
        self.info = Gauge("model_server_model_info", "The model being served", (*LABELS, "uri"),
                          registry=r)
        self.fault_latency = Gauge("model_server_fault_injection_latency_seconds",
                                   "FAULT INJECTION: latency added to every request", registry=r)
        self.fault_ratio = Gauge("model_server_fault_injection_error_ratio",
                                 "FAULT INJECTION: share of requests answered 500", registry=r)
        self._cells = self.tally.cells
        self._at = t.UNBOUND_AT

    def bind(self, model: str, version: str, uri: str) -> None:
        """Label every later observation with the loaded model."""
        self.tally.bind((model, version))
        self._at = t.BOUND_AT
        self.info.labels(model, version, uri).set(1)

    def set_ready(self, ready: bool) -> None:
        self._cells[t.READY] = 1.0 if ready else 0.0

    @property
    def ready(self) -> bool:
        """This process is ready and so is every other worker."""
        return self.tally.all_ready()

    def begin_request(self) -> None:
        self._cells[t.INFLIGHT] += 1

    def end_request(self, code: int, seconds: float) -> None:
        self._cells[t.INFLIGHT] -= 1
        self.observe_request(code, seconds)

    def observe_request(self, code: int, seconds: float) -> None:
        cells, at = self._cells, self._at
        k = code - t.FIRST_CODE
        # only the server's own statuses reach here (100..599); anything else would be a bug
        cells[at + (k if 0 <= k < t.CODES else 500 - t.FIRST_CODE)] += 1
        latency = at + t.LATENCY_AT
        cells[latency + bisect_left(LATENCY_BUCKETS, seconds)] += 1
        cells[latency + len(LATENCY_BUCKETS) + 1] += seconds

    def observe_batch(self, rows: int, seconds: float) -> None:
        cells = self._cells
        batch = self._at + t.BATCH_AT
        cells[batch + bisect_left(BATCH_BUCKETS, rows)] += 1
        cells[batch + len(BATCH_BUCKETS) + 1] += rows
        inference = self._at + t.INFERENCE_AT
        cells[inference + bisect_left(INFERENCE_BUCKETS, seconds)] += 1
        cells[inference + len(INFERENCE_BUCKETS) + 1] += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry)
