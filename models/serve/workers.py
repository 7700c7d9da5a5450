"""Several server processes on one port: ``--workers N`` (issue 14, item 5).

Why processes: one server is one event loop on one core, and at 32 clients most of its time is
the kernel's (a ``send`` and a ``recv`` per request), so a second core needs a second process.
Each worker is the whole single-process server (its own listener, batcher and ONNX Runtime
session: the model's memory is paid N times) listening with ``SO_REUSEPORT`` on the same port;
the kernel spreads new connections over them. Their per-request counters live in one shared
file (models/serve/tally.py), so any worker's ``/metrics`` reports the sum over all of them and
``/readyz`` turns 200 only once every worker is ready.

The parent only supervises: it reserves the port (a bound socket that never listens, so that
``--port 0`` gives every worker the same port), starts the workers, forwards SIGTERM / SIGINT,
and restarts none of them: a worker that exits when no stop was asked stops the others and the
parent exits non-zero, so that the container engine (or whatever runs the server) restarts the
whole replica instead of it living on with less capacity than it reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import cast

from models.serve.config import ServeConfig
from models.serve.tally import Tally

log = logging.getLogger("models.serve")
#: after the workers' own drain and shutdown delay, how long they may take to exit
EXIT_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
SHM = "/dev/shm"  # noqa: S108 - only ever the parent of a mkdtemp directory
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def reserve(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, never-listening ``SO_REUSEPORT`` socket: it holds the port (and picks one for
    port 0) while the workers bind the same one; only listening sockets get connections."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


def _die_with_parent(parent: int) -> None:
    """A worker gets SIGTERM if the parent dies without stopping it (SIGKILL, a crash)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        sys.exit(1)


def _worker(config: ServeConfig, slot: int, slots: int, tally_path: str, parent: int) -> None:
    """One worker (a spawned process): the single-process server with a shared tally."""
    _die_with_parent(parent)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format=LOG_FORMAT.replace("%(name)s", f"%(name)s[worker {slot}]"))
    from models.serve.server import event_loop, serve

    tally = Tally.attach(Path(tally_path), slots, slot)
    sys.exit(event_loop(config.event_loop)(serve(config, tally=tally, reuse_port=True)))


class _Supervisor:
    def __init__(self, config: ServeConfig, procs: list[BaseProcess]) -> None:
        self.config = config
        self.procs = procs
        self.stop_asked_at = 0.0  # monotonic time of the first SIGTERM/SIGINT or failure
        self.failed: int | None = None

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if not self.stop_asked_at:
            self.stop_asked_at = time.monotonic()
        for proc in self.procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def watch(self) -> int:
        """Wait for every worker; the exit status of the whole server."""
        alive = {proc.sentinel: proc for proc in self.procs}
        grace = self.config.drain_timeout_s + self.config.shutdown_delay_s + EXIT_GRACE_S
        while alive:
            for sentinel in wait(list(alive), timeout=0.5):
                self._exited(alive.pop(cast(int, sentinel)))
            if alive and self.stop_asked_at and time.monotonic() - self.stop_asked_at > grace:
                for proc in alive.values():
                    log.error("worker pid %d did not stop within %g s: killing it", proc.pid,
                              grace)
                    proc.kill()
                self.failed = self.failed or 1
                grace = float("inf")
        return 0 if self.failed is None else self.failed

    def _exited(self, proc: BaseProcess) -> None:
        proc.join()
        code = proc.exitcode if proc.exitcode is not None else 1
        if not self.stop_asked_at:
            log.error("worker %s (pid %d) exited with status %d while serving: stopping the "
                      "other workers; the server exits 1 so that it is restarted whole",
                      proc.name, proc.pid, code)
            self.failed = code if code > 0 else 1
            self.stop()
        elif code not in (0, -signal.SIGTERM) and self.failed is None:
            log.error("worker %s (pid %d) stopped with status %d", proc.name, proc.pid, code)
            self.failed = code if code > 0 else 1


def supervise(config: ServeConfig, workers: int) -> int:
    """Run ``workers`` server processes on ``config``'s port until they stop; the exit status."""
    sock, port = reserve(config.host, config.port)
    # in memory where there is a tmpfs for it: a file on disk would be written back every few
    # seconds for counters nobody needs after the process is gone
    # (mkdtemp: a fresh 0700 directory of a random name, so a shared /dev/shm is safe here)
    shm = SHM if os.access(SHM, os.W_OK) else None
    workdir = Path(tempfile.mkdtemp(prefix="model-server-", dir=shm))
    tally_path = workdir / "tally"
    Tally.create(tally_path, workers)
    ctx = multiprocessing.get_context("spawn")  # no forked copies of the parent's state
    child = replace(config, port=port, workers=1)
    procs: list[BaseProcess] = [
        ctx.Process(target=_worker, args=(child, slot, workers, str(tally_path), os.getpid()),
                    name=f"worker-{slot}")
        for slot in range(workers)]
    supervisor = _Supervisor(config, procs)
    previous = {sig: signal.signal(sig, supervisor.stop) for sig in (signal.SIGTERM,
                                                                      signal.SIGINT)}
    try:
        for proc in procs:
            proc.start()
        log.info("supervising %d workers on port %d: %s", workers, port,
                 ", ".join(f"pid {proc.pid}" for proc in procs))
        if supervisor.stop_asked_at:  # a signal came while they were starting
            supervisor.stop()
        code = supervisor.watch()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("stopped (status %d)", code)
    return code
