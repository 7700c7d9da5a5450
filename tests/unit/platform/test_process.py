from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from suite.errors import MissingBinary, PortInUse, ServiceUnavailable
from suite.platform import process
from suite.platform.service import find_binary


def test_port_in_use_error_names_port_owner_and_fix():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse) as info:
            process.ensure_port_free("mlflow", "127.0.0.1", port, "--port mlflow=PORT")
    text = str(info.value)
    assert f"port {port}" in text
    assert "needed by mlflow" in text
    assert f"pid {os.getpid()}" in text  # the owner: this test process
    assert "--port mlflow=PORT" in text


def test_missing_binary_names_the_package():
    with pytest.raises(MissingBinary, match="'no-such-tool' is not installed: apt-get install x"):
        find_binary("no-such-tool", "apt-get install x")


READY_THEN_SLEEP = "import pathlib, time; pathlib.Path({!r}).touch(); time.sleep(600)"


def test_spawned_process_is_tracked_and_stopped_with_its_signal(tmp_path: Path):
    rec = process.spawn(
        name="sleeper", argv=[sys.executable, "-c", "import time; time.sleep(60)"],
        env={}, cwd=tmp_path, log_path=tmp_path / "log", run_dir=tmp_path / "run",
        stop_signal=signal.SIGINT,
    )
    assert rec.alive()
    assert process.read_record(tmp_path / "run", "sleeper") == rec
    assert process.stop(rec, timeout=5)
    assert not rec.alive()


def test_a_child_of_a_shell_that_ignores_sigint_still_stops_on_its_sigint(tmp_path: Path):
    """A background job of a non-interactive shell inherits SIGINT ignored (how the fresh-clone
    `make test` failure happened): the child gets the default action back, so SIGINT stops it
    (KeyboardInterrupt in its log) instead of the SIGKILL after the timeout."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        rec = process.spawn(
            name="sleeper",
            argv=[sys.executable, "-c", READY_THEN_SLEEP.format(str(tmp_path / "ready"))],
            env={}, cwd=tmp_path, log_path=tmp_path / "log", run_dir=tmp_path / "run",
            stop_signal=signal.SIGINT,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    process.wait_until((tmp_path / "ready").exists, timeout=60, what="sleeper", record=rec)
    assert process.stop(rec, timeout=60)
    assert not rec.alive()
    assert "KeyboardInterrupt" in (tmp_path / "log").read_text()


def test_a_process_that_ignores_its_signal_is_killed_and_gone_when_stop_returns(tmp_path: Path):
    code = ("import signal, pathlib, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(tmp_path / 'ready')!r}).touch(); time.sleep(600)")
    rec = process.spawn(name="stubborn", argv=[sys.executable, "-c", code], env={}, cwd=tmp_path,
                        log_path=tmp_path / "log", run_dir=tmp_path / "run")
    process.wait_until((tmp_path / "ready").exists, timeout=60, what="stubborn", record=rec)
    assert process.stop(rec, timeout=0.2)
    assert not rec.alive()
    with pytest.raises(ProcessLookupError):  # reaped: not even a zombie is left
        os.kill(rec.pid, 0)


def test_recycled_pid_does_not_look_alive(tmp_path: Path):
    rec = process.spawn(
        name="x", argv=[sys.executable, "-c", "pass"], env={}, cwd=tmp_path,
        log_path=tmp_path / "log", run_dir=tmp_path / "run",
    )
    fake = process.ProcessRecord("x", rec.pid, rec.create_time - 1000, rec.argv, rec.stop_signal)
    assert not fake.alive()


def test_service_that_exits_during_start_reports_its_log(tmp_path: Path):
    log = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-c", "print('boom: bad config')"],
                            stdout=log.open("w"))
    proc.wait()
    rec = process.ProcessRecord("bad", proc.pid, 0.0, [], signal.SIGTERM)
    with pytest.raises(ServiceUnavailable, match=r"exited during start(.|\n)*boom: bad config"):
        process.wait_until(lambda: False, timeout=5, what="bad", record=rec, log_path=log)


def test_health_timeout_names_the_service(tmp_path: Path):
    with pytest.raises(ServiceUnavailable, match="slowpoke did not become healthy within 0s"):
        process.wait_until(lambda: False, timeout=0.3, what="slowpoke")
