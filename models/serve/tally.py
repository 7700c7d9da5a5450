"""The hot-path counters of every worker process in one shared buffer, so any worker's
``/metrics`` reports the sum over all of them.

Why shared memory and not a scrape of each worker: with ``SO_REUSEPORT`` the kernel picks the
worker that answers a scrape, and the canary judge reads ``increase()`` of counters that must
count every request of the replica; one worker's figures would be a random share of them.

Layout: one slot per worker, each with the labels its model was bound to and float64 cells
(two series of counters, the unbound one of requests answered before the model loaded and the
bound one, then the in-flight and ready gauges). A slot has one writer, its worker's event loop;
8-byte aligned stores are atomic on the platforms served, so a reader sees each cell whole (a
scrape may see a bucket a request ahead of its sum, as with any lock-free Prometheus client).
A single-process server uses the same layout in a private ``bytearray``.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

from models.serve.errors import ConfigInvalid

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01,
                   0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: one ONNX Runtime call: microseconds for small models, up to seconds for large ones
INFERENCE_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: status codes 100..599, one cell each
FIRST_CODE, CODES = 100, 500
#: offsets of the histograms in a series: bucket counts (the last one +Inf), then the sum
LATENCY_AT = CODES
BATCH_AT = LATENCY_AT + len(LATENCY_BUCKETS) + 2
INFERENCE_AT = BATCH_AT + len(BATCH_BUCKETS) + 2
SERIES_CELLS = INFERENCE_AT + len(INFERENCE_BUCKETS) + 2
#: cells of a slot after its two series
UNBOUND_AT, BOUND_AT = 0, SERIES_CELLS
INFLIGHT = 2 * SERIES_CELLS
READY = INFLIGHT + 1
LABELS_LENGTH = READY + 1  # the labels' byte count, written after their bytes (0: unbound)
SLOT_CELLS = LABELS_LENGTH + 1
LABEL_BYTES = 512
SLOT_BYTES = LABEL_BYTES + 8 * SLOT_CELLS


class Tally:
    """``slots`` slots in ``buffer``; this process writes slot ``slot``."""

    def __init__(self, buffer: bytearray | mmap.mmap, slots: int, slot: int) -> None:
        if len(buffer) < slots * SLOT_BYTES or not 0 <= slot < slots:
            raise ConfigInvalid(f"metrics buffer of {len(buffer)} bytes cannot hold slot {slot} "
                                f"of {slots} (expected {slots * SLOT_BYTES} bytes)")
        self.buffer, self.slots, self.slot = buffer, slots, slot
        view = memoryview(buffer)
        self._labels = [view[s * SLOT_BYTES:s * SLOT_BYTES + LABEL_BYTES] for s in range(slots)]
        self._cells: list[memoryview[float]] = [
            view[s * SLOT_BYTES + LABEL_BYTES:(s + 1) * SLOT_BYTES].cast("d") for s in range(slots)]
        #: this process's cells (the hot path writes only these)
        self.cells = self._cells[slot]

    @classmethod
    def local(cls) -> Tally:
        return cls(bytearray(SLOT_BYTES), 1, 0)

    @staticmethod
    def create(path: Path, slots: int) -> None:
        """A zeroed file for ``slots`` workers (the parent makes it before starting them)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, slots * SLOT_BYTES)
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, path: Path, slots: int, slot: int) -> Tally:
        with open(path, "r+b") as fh:
            buffer = mmap.mmap(fh.fileno(), slots * SLOT_BYTES)
        return cls(buffer, slots, slot)

    def bind(self, labels: tuple[str, str]) -> None:
        """Name this slot's bound series; a new name starts it from zero."""
        cells = self.cells
        if self.labels(self.slot) == labels:
            return
        data = json.dumps(list(labels)).encode()[:LABEL_BYTES]
        cells[LABELS_LENGTH] = 0.0
        for i in range(BOUND_AT, BOUND_AT + SERIES_CELLS):
            cells[i] = 0.0
        self._labels[self.slot][:len(data)] = data
        cells[LABELS_LENGTH] = float(len(data))

    def labels(self, slot: int) -> tuple[str, str] | None:
        length = int(self._cells[slot][LABELS_LENGTH])
        if not length:
            return None
        try:
            model, version = json.loads(bytes(self._labels[slot][:length]))
        except ValueError:  # pragma: no cover - a slot being relabelled this instant
            return None
        return str(model), str(version)

    def slot_cells(self, slot: int) -> memoryview[float]:
        return self._cells[slot]

    def all_ready(self) -> bool:
        return all(cells[READY] == 1.0 for cells in self._cells)

    def inflight(self) -> float:
        return sum(cells[INFLIGHT] for cells in self._cells)

    def close(self) -> None:
        for cells in self._cells:
            cells.release()
        for label in self._labels:
            label.release()
        if isinstance(self.buffer, mmap.mmap):
            self.buffer.close()
