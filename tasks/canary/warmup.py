"""When a fresh canary replica is warm: the pure rule behind the canary's warm-up.

A fresh replica answers slower in its first requests (ONNX Runtime's first runs, cold caches,
lazily built paths). Judging those requests measures the replica's start, not the version: on
the real platform the sequential latency test, watching from the canary's first second, rolled
back an A/A release at 4.3 s. Flagger runs pre-rollout hooks (a load test) and Argo Rollouts an
analysis before the canary scales; here the release sends requests straight to each new replica
(not through the router, so no user sees them) before it gets any weight, in rounds, until the
round medians stop improving. Then the sequential tests watch from the canary's first request.

The rule: a round is ``round_requests`` requests one after the other; the replica is warm when
at least ``min_requests`` were sent and the last ``settled_rounds`` rounds each have a median
within ``tolerance`` of the best round median so far (latency stopped falling). It gives up at
``max_requests`` or ``max_seconds`` (reported as not settled: the analysis then judges whatever
the replica does, which is what a replica that never warms deserves).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from suite.errors import ConfigError


class Settle(StrEnum):
    """Where one replica's warm-up stands after a round."""

    WARMING = "warming"  # latency still falling: send another round
    SETTLED = "settled"
    GAVE_UP = "gave-up"  # max_requests or max_seconds reached before it settled


@dataclass(frozen=True)
class WarmupConfig:
    """The template's ``warmup:`` section (policies/canary.py validates the YAML)."""

    path: str = "/healthz"
    method: str = "GET"
    body: Any = None  # JSON sent with each request (POST/PUT), e.g. one model input row
    headers: Mapping[str, str] = field(default_factory=dict)
    round_requests: int = 20
    min_requests: int = 100
    max_requests: int = 5000
    settled_rounds: int = 2
    tolerance: float = 0.25
    max_seconds: float = 30.0
    timeout_seconds: float = 5.0  # per request

    def __post_init__(self) -> None:
        problems = []
        if not self.path.startswith("/"):
            problems.append(f"path is {self.path!r} (expected an absolute path, e.g. /predict)")
        if self.method not in ("GET", "POST", "PUT"):
            problems.append(f"method is {self.method!r} (expected GET, POST or PUT)")
        for name in ("round_requests", "min_requests", "max_requests", "settled_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} is {value!r} (expected a whole number >= 1)")
        if not problems and self.max_requests < self.min_requests:
            problems.append(f"max_requests {self.max_requests} is below min_requests "
                            f"{self.min_requests} (expected max_requests >= min_requests)")
        for name in ("tolerance", "max_seconds", "timeout_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value <= 0:
                problems.append(f"{name} is {value!r} (expected a number > 0)")
        if problems:
            raise ConfigError("warmup." + "; warmup.".join(problems))


def round_median(latencies_s: Sequence[float]) -> float:
    """A round's latency: its median (one slow request, a GC pause, does not hold it back)."""
    if not latencies_s:
        raise ConfigError("a warm-up round has no answered request (expected at least one)")
    return float(statistics.median(latencies_s))


def settle(medians: Sequence[float], sent: int, elapsed_s: float,
           config: WarmupConfig) -> Settle:
    """After a round: warm, still warming, or given up (``medians``: one per round so far)."""
    k = config.settled_rounds
    if sent >= config.min_requests and len(medians) > k:
        best_before = min(medians[:-k])
        best = min(best_before, *medians[-k:])
        if all(m <= best * (1 + config.tolerance) for m in medians[-k:]) \
                and min(medians[-k:]) >= best_before / (1 + config.tolerance):
            return Settle.SETTLED
    if sent >= config.max_requests or elapsed_s >= config.max_seconds:
        return Settle.GAVE_UP
    return Settle.WARMING
