"""Server configuration from command-line flags over ``SERVE_*`` environment variables.

This is the server's only reader of the environment (it runs as its own program, often in a
container where variables are the natural interface). Fault injection is off unless
``SERVE_FAULT_LATENCY_MS`` / ``SERVE_FAULT_ERROR_RATIO`` (or the matching flags) say otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from models.serve.errors import ConfigInvalid


@dataclass(frozen=True)
class ServeConfig:
    model_uri: str
    host: str = "127.0.0.1"
    port: int = 8080
    #: most rows per ONNX Runtime call (a single larger request still runs as one batch)
    max_batch_size: int = 32
    #: longest a queued request waits for others to join its batch
    max_wait_ms: float = 2.0
    max_body_bytes: int = 1 << 20
    #: open connections per process; past half of them idle connections are closed sooner
    max_connections: int = 512
    #: an idle keep-alive connection is closed after this long (when connections are few)
    keepalive_timeout_s: float = 75.0
    #: a request head must be complete this long after its first byte
    head_timeout_s: float = 10.0
    #: most rows in one request
    max_rows: int = 1024
    #: ONNX Runtime intra-op threads
    threads: int = 1
    #: run ONNX Runtime in a thread (heavy models) instead of on the event loop (small ones)
    offload_inference: bool = False
    #: how long a shutdown waits for in-flight requests
    drain_timeout_s: float = 15.0
    #: after SIGTERM, how long /readyz reports 503 before the listener closes (load balancers)
    shutdown_delay_s: float = 0.0
    #: Prometheus labels; default from the registry or the ONNX metadata
    model_name: str | None = None
    model_version: str | None = None
    #: MLflow tracking URI for ``models:/`` URIs (default: MLFLOW_TRACKING_URI)
    tracking_uri: str | None = None
    #: FAULT INJECTION (canary tests, demos): added latency per request and share of 500s
    fault_latency_ms: float = 0.0
    fault_error_ratio: float = 0.0
    log_level: str = "info"
    #: auto (uvloop when installed, else asyncio's), uvloop, or asyncio
    event_loop: str = "auto"
    #: server processes on the port (SO_REUSEPORT), each with its own model copy; 0 = one per
    #: usable CPU, at most 2 (:func:`worker_count`). 1 by default: on 2 cores shared with the
    #: clients a second worker gained 31 % on a quiet machine but lost 10-30 % under load, at
    #: 30 % more CPU per request and 2.5x the memory (bench/RESULTS.md)
    workers: int = 1

    def __post_init__(self) -> None:
        _range("port", self.port, 0, 65535)
        _range("max_batch_size", self.max_batch_size, 1, 65536)
        _range("max_wait_ms", self.max_wait_ms, 0, 10_000)
        _range("max_body_bytes", self.max_body_bytes, 64, 1 << 30)
        _range("max_connections", self.max_connections, 1, 1 << 20)
        _range("keepalive_timeout_s", self.keepalive_timeout_s, 0.1, 3600)
        _range("head_timeout_s", self.head_timeout_s, 0.1, 3600)
        _range("max_rows", self.max_rows, 1, 1 << 20)
        _range("threads", self.threads, 0, 256)
        _range("drain_timeout_s", self.drain_timeout_s, 0, 3600)
        _range("shutdown_delay_s", self.shutdown_delay_s, 0, 600)
        _range("fault_latency_ms", self.fault_latency_ms, 0, 600_000)
        _range("fault_error_ratio", self.fault_error_ratio, 0, 1)
        _range("workers", self.workers, 0, 64)
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigInvalid(f"--log-level / SERVE_LOG_LEVEL is {self.log_level!r} "
                                "(expected debug, info, warning or error)")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigInvalid(f"--event-loop / SERVE_EVENT_LOOP is {self.event_loop!r} "
                                "(expected auto, uvloop or asyncio)")
        if not self.model_uri:
            raise ConfigInvalid("model URI is empty (pass --model-uri PATH|models:/NAME@ALIAS "
                                "or set SERVE_MODEL_URI)")

    @property
    def faults_enabled(self) -> bool:
        return self.fault_latency_ms > 0 or self.fault_error_ratio > 0


#: the most workers ``--workers 0`` picks: past two, on the small machines measured, the
#: workers take the CPU the clients and the platform need (bench/RESULTS.md)
AUTO_WORKERS_MAX = 2


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, lowered by a cgroup v2 quota (a container's
    ``--cpus``) when one is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def worker_count(config: ServeConfig, cpus: int | None = None) -> int:
    if config.workers > 0:
        return config.workers
    return min(AUTO_WORKERS_MAX, usable_cpus() if cpus is None else cpus)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env(name: str) -> str:
    return "SERVE_" + name.upper()


def _range(name: str, value: float, low: float, high: float) -> None:
    if (isinstance(value, float) and math.isnan(value)) or not low <= value <= high:
        raise ConfigInvalid(f"{_flag(name)} / {_env(name)} is {value!r} "
                            f"(expected a number in [{low:g}, {high:g}])")


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "1/0, true/false, yes/no"}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _convert(name: str, kind: str, raw: str) -> object:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _BOOLS[raw.strip().lower()]
    except (ValueError, KeyError) as exc:
        raise ConfigInvalid(f"{_flag(name)} / {_env(name)} is {raw!r} "
                            f"(expected {_EXPECTED[kind]})") from exc
    return raw


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.serve",
        description="Serve an ONNX model over HTTP with dynamic micro-batching. Every flag can "
                    "also be set as SERVE_<FLAG> (e.g. SERVE_MAX_WAIT_MS); flags win.",
    )
    help_text = {
        "model_uri": "a .onnx file, an MLflow model directory, models:/NAME@ALIAS or "
                     "models:/NAME/VERSION",
        "fault_latency_ms": "FAULT INJECTION: extra latency added to every /predict (0 = off)",
        "fault_error_ratio": "FAULT INJECTION: share of /predict answered 500 (0 = off)",
    }
    for f in fields(ServeConfig):
        kind = str(f.type).split(" ")[0]
        helps = help_text.get(f.name, f"(env {_env(f.name)})")
        if kind == "bool":
            p.add_argument(_flag(f.name), dest=f.name, action="store_const", const="1",
                           default=None, help=helps)
        else:
            p.add_argument(_flag(f.name), dest=f.name, default=None, help=helps)
    return p


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ServeConfig:
    env = os.environ if env is None else env
    args = vars(parser().parse_args(argv))
    values: dict[str, object] = {}
    for f in fields(ServeConfig):
        raw = args.get(f.name)
        if raw is None and env.get(_env(f.name)):
            raw = env[_env(f.name)]
        if raw is None:
            continue
        values[f.name] = _convert(f.name, str(f.type).split(" ")[0], raw)
    if "tracking_uri" not in values and env.get("MLFLOW_TRACKING_URI"):
        values["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
    if "model_uri" not in values:
        raise ConfigInvalid("no model given (pass --model-uri PATH|models:/NAME@ALIAS or set "
                            "SERVE_MODEL_URI)")
    return ServeConfig(**values)  # type: ignore[arg-type]
