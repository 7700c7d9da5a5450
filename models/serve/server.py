"""Start the server, load the model, and shut down gracefully.

Start-up: the listener opens at once (``/healthz`` answers, ``/readyz`` is 503 "loading"), the
model loads in a thread, then ``/readyz`` turns 200. A failed load exits with status 1.

With ``--workers N`` (N > 1) a parent process runs N of these on one port (models/serve/workers.py).

SIGTERM / SIGINT: ``/readyz`` turns 503 "draining", after ``shutdown_delay_s`` the listener
closes, requests in flight finish (up to ``drain_timeout_s``), the batcher runs what is queued,
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from models.serve import config as config_mod
from models.serve.config import ServeConfig, worker_count
from models.serve.errors import ConfigInvalid, ServeError

if TYPE_CHECKING:
    from models.serve.tally import Tally

log = logging.getLogger("models.serve")


async def serve(config: ServeConfig, tally: Tally | None = None, reuse_port: bool = False
                ) -> int:
    """One server process; ``tally``: the counters it shares with other workers."""
    # imported here: the supervising parent of --workers never loads ONNX Runtime, numpy or
    # prometheus_client (about 60 MiB it would hold for nothing)
    from models.serve.app import ServerState, build_server
    from models.serve.metrics import ServerMetrics

    state = ServerState(config, metrics=ServerMetrics(tally))
    http = build_server(state)
    await http.start(config.host, config.port, backlog=1024, reuse_port=reuse_port)
    addresses = ", ".join(f"http://{host}:{port}" for host, port in http.addresses)
    log.info("listening on %s (loading %s; event loop %s)", addresses, config.model_uri,
             type(asyncio.get_running_loop()).__module__.split(".")[0])
    if config.faults_enabled:
        log.warning("FAULT INJECTION ENABLED: +%g ms latency, %g error ratio",
                    config.fault_latency_ms, config.fault_error_ratio)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    code = 0
    loading: asyncio.Future[None] = loop.run_in_executor(None, state.load)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {loading, stopping}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if loading.done():
        exc = loading.exception()
        if exc is not None:
            state.phase = "failed"
            log.error("cannot load the model: %s", exc)
            code = 1
            stop.set()
        else:
            state.start_batching()
            log.info("ready: model %s version %s, input %s, max batch %d, max wait %g ms",
                     state.name, state.version, state.model and state.model.feature_shape,
                     config.max_batch_size, config.max_wait_ms)
    await stopping

    state.phase = "draining" if code == 0 else state.phase
    state.metrics.set_ready(False)
    log.info("shutting down: draining in-flight requests (up to %g s)", config.drain_timeout_s)
    if config.shutdown_delay_s > 0 and code == 0:
        await asyncio.sleep(config.shutdown_delay_s)
    await http.shutdown(config.drain_timeout_s)
    if state.batcher is not None:
        await state.batcher.stop()
    if not loading.done():
        loading.cancel()
    log.info("stopped")
    return code


def event_loop(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` on uvloop when asked or (``auto``) when it is installed: its transports
    and loop are C, which halves the server's per-request CPU (bench/RESULTS.md)."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigInvalid("--event-loop uvloop: uvloop is not installed (pip install "
                                "uvloop, or use --event-loop asyncio)") from exc
        return asyncio.run
    run: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return run


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_mod.load(argv)
        runner = event_loop(config.event_loop)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers = worker_count(config)
    try:
        if workers > 1:
            from models.serve.workers import supervise

            return supervise(config, workers)
        return runner(serve(config))
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 1
