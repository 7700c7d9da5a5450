"""The engine leaves nothing mounted under SUITE_HOME: after `suite down`, and after a crash.

Runs on an engine-only platform of its own (under a second to start) with a tiny image built
here from the host's ``sleep`` and the libraries it links (no registry, no base image).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from suite import engine as engine_mod
from suite.platform import manager, process
from suite.platform.services.podman import RELEASE_LABEL
from suite.platform.services.podman_reap import holders, live_conmons, read_mounts
from suite.settings import Settings
from tests.conftest import OWNER_FILE, claim, free_ports, reap_orphaned_platforms

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None or shutil.which("runc") is None,
                       reason="podman/runc missing: apt-get install podman buildah runc"),
]

IMAGE = "localhost/suite-test-sleep:1"


def _sleep_image(client: docker.DockerClient, context: Path) -> str:
    sleep = Path(shutil.which("sleep") or "/bin/sleep").resolve()
    libs = [Path(word) for line in subprocess.run(["ldd", str(sleep)], capture_output=True,
                                                  text=True, check=True).stdout.splitlines()
            for word in line.split() if word.startswith("/")]
    for path in [sleep, *libs]:
        target = context / "root" / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (context / "Dockerfile").write_text(
        f'FROM scratch\nCOPY root/ /\nENTRYPOINT ["{sleep}"]\nCMD ["600"]\n')
    engine_mod.build(client, context=context, dockerfile="Dockerfile", tag=IMAGE)
    return IMAGE


@pytest.fixture
def engine_home(tmp_path: Path, orphans_reaped: list[Path]) -> Iterator[Settings]:
    settings = Settings(home=tmp_path / "home", ports=free_ports(), workers=1)
    claim(settings.home)
    try:
        manager.up(settings, only=["engine"])
        yield settings
    finally:
        manager.down(settings, only=["engine"])


def _engine_mounts(settings: Settings) -> list[Path]:
    return read_mounts(settings.dir("engine").resolve())


def _run_release_and_plain(settings: Settings, tmp_path: Path):
    client = engine_mod.client(settings)
    image = _sleep_image(client, tmp_path / "image")
    # SIGKILL as stop signal: `sleep` as PID 1 ignores SIGTERM, the stop would wait 5 s
    release = client.containers.run(image, detach=True, name="release-replica",
                                    labels={RELEASE_LABEL: "probe"}, stop_signal="SIGKILL")
    plain = client.containers.run(image, detach=True, name="plain", stop_signal="SIGKILL")
    assert len(_engine_mounts(settings)) == 4  # a root filesystem and a /dev/shm each
    return client, release, plain


def test_down_stops_every_container_and_leaves_the_engine_dir_removable(
    engine_home: Settings, tmp_path: Path
) -> None:
    _run_release_and_plain(engine_home, tmp_path)

    manager.down(engine_home, only=["engine"])

    assert _engine_mounts(engine_home) == []
    assert live_conmons(engine_home.dir("engine", "storage")) == {}
    shutil.rmtree(engine_home.home)  # what failed with "Device or resource busy"


def test_up_after_a_crash_cleans_orphans_and_restarts_release_replicas(
    engine_home: Settings, tmp_path: Path
) -> None:
    client, release, plain = _run_release_and_plain(engine_home, tmp_path)
    storage = engine_home.dir("engine", "storage")
    # a crash: the service, every conmon and every container die without any cleanup
    record = process.read_record(engine_home.dir("run"), "engine")
    assert record is not None
    for container in (release, plain):
        container.reload()  # run() returns the attributes seen at create: no pid yet
    pids = [record.pid, *live_conmons(storage).values(),
            *(int(c.attrs["State"]["Pid"]) for c in (release, plain))]
    assert len(pids) == 5 and all(pid > 1 for pid in pids)  # kill(0) would hit pytest itself
    os.killpg(record.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (live_conmons(storage) or record.alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_engine_mounts(engine_home)) == 4  # what used to leak

    manager.up(engine_home, only=["engine"])

    client = engine_mod.client(engine_home)
    assert client.containers.get("release-replica").status == "running"
    assert client.containers.get("plain").status == "exited"
    assert holders(storage, _engine_mounts(engine_home)) == {release.id}
    assert "conmon was gone" in engine_home.dir("logs", "engine.log").read_text()

    manager.down(engine_home, only=["engine"])
    assert _engine_mounts(engine_home) == []
    shutil.rmtree(engine_home.home)


def test_a_killed_sessions_platform_is_stopped_by_the_next_session(tmp_path: Path) -> None:
    home = tmp_path / "pytest-1" / "suite-home0"
    settings = Settings(home=home, ports=free_ports(), workers=1)
    try:
        manager.up(settings, only=["engine"])
        _run_release_and_plain(settings, tmp_path)
        gone = subprocess.Popen(["true"])  # the owner: a process that has exited
        gone.wait()
        (home / OWNER_FILE).write_text(json.dumps({"pid": gone.pid, "create_time": 0.0}))

        assert reap_orphaned_platforms(tmp_path) == [home]

        assert all(s.state == "down" for s in manager.status(settings))
        assert live_conmons(settings.dir("engine", "storage")) == {}
        assert _engine_mounts(settings) == []
        assert reap_orphaned_platforms(tmp_path) == []  # marker gone: reaped once
    finally:
        manager.down(settings, only=["engine"])
