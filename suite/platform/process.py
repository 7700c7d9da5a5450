"""Start, find and stop the platform's background processes.

Each service runs in its own session (process group) so stopping it also stops its children
(Prefect's uvicorn, MLflow's job consumers). Its pid, start time and command go to a small JSON
file under ``run/``; a pid is only trusted when the process with that pid also has the recorded
start time, so a recycled pid never makes a crashed service look alive.

A child starts with the default action for the signals that stop it: a shell running `suite up`
in the background (or under ``nohup``) hands its children SIGINT/SIGQUIT (or SIGHUP) ignored, and a
worker that ignores its SIGINT would only die of the SIGKILL after the stop timeout.
``stop()`` returns once the process is gone (reaped when it is our child), never while it is
still dying.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from suite.errors import PortInUse, ServiceUnavailable
from suite.platform.files import atomic_write


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]
    stop_signal: int

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(proc.create_time() - self.create_time) < 1.0
        except psutil.Error:
            return False


def record_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def read_record(run_dir: Path, name: str) -> ProcessRecord | None:
    path = record_path(run_dir, name)
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def who_listens(port: int) -> str:
    """Best effort description of the process bound to ``port``."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid:
                    try:
                        proc = psutil.Process(conn.pid)
                        return f"pid {conn.pid} ({proc.name()})"
                    except psutil.Error:
                        return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "another process"


def ensure_port_free(service: str, host: str, port: int, env_hint: str) -> None:
    if not port_is_free(host, port):
        raise PortInUse(
            f"port {port} on {host} needed by {service} is already in use by {who_listens(port)}; "
            f"stop that process or choose another port ({env_hint})"
        )


#: signals a child gets back at their default action (and unblocked) before it execs
RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)
#: how long a SIGKILLed process may take to disappear before stop() calls it a failure
KILL_GRACE = 10.0


def _child_setup(preexec: Callable[[], None] | None) -> Callable[[], None]:
    def setup() -> None:
        for sig in RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RESET_SIGNALS)
        if preexec is not None:
            preexec()

    return setup


def spawn(
    *,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    run_dir: Path,
    stop_signal: int = signal.SIGTERM,
    preexec: Callable[[], None] | None = None,
) -> ProcessRecord:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start {name}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            preexec_fn=_child_setup(preexec),
        )
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        created = time.time()
    record = ProcessRecord(name, proc.pid, created, list(argv), int(stop_signal))
    atomic_write(record_path(run_dir, name), json.dumps(asdict(record)), mode=0o644)
    return record


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our own child, so no zombie is left."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (or init) reaps it
        pass


def _gone(record: ProcessRecord) -> bool:
    _reap(record.pid)
    return not record.alive()


def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(record: ProcessRecord, timeout: float = 30.0) -> bool:
    """Stop the process group gracefully; escalate to SIGKILL after ``timeout``.

    Returns True once the process is gone, False when it was not running. A process that
    survives even SIGKILL for ``KILL_GRACE`` seconds (stuck in the kernel) is an error.
    """
    if not record.alive():
        return False
    try:
        os.killpg(record.pid, record.stop_signal)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(record.pid, record.stop_signal)
    graceful = _wait_gone(record, timeout)
    # SIGKILL the group: the leader when it ignored its signal, and in any case the children
    # it left behind (job consumers and the like).
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not graceful and not _wait_gone(record, KILL_GRACE):
        raise ServiceUnavailable(
            f"{record.name} (pid {record.pid}) is still running {timeout + KILL_GRACE:.0f}s "
            f"after {signal.Signals(record.stop_signal).name} and SIGKILL (stuck in the "
            f"kernel?); see `ps -o pid,stat,wchan -p {record.pid}`"
        )
    return True


def tail(path: Path, lines: int = 20) -> str:
    try:
        data = path.read_bytes()[-20000:].decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    record: ProcessRecord | None = None,
    log_path: Path | None = None,
    interval: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if record is not None and not record.alive():
            raise ServiceUnavailable(
                f"{what} exited during start; last log lines ({log_path}):\n"
                f"{tail(log_path) if log_path else ''}"
            )
        time.sleep(interval)
    raise ServiceUnavailable(
        f"{what} did not become healthy within {timeout:.0f}s; see {log_path}:\n"
        f"{tail(log_path) if log_path else ''}"
    )
