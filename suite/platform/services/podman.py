"""The container engine: podman's Docker-compatible API service on a unix socket.

Everything the engine needs is under its state directory: the three containers config files
(named to podman by ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF`` /
``CONTAINERS_REGISTRIES_CONF``), image storage, run state and the socket. What works on this
kind of machine (see COMPONENTS.md): the runc runtime (crun fails on hybrid cgroups), the
cgroupfs manager, explicit nofile/nproc ulimits (runc cannot raise them), overlay storage, and
the platform's own registry marked insecure (it speaks plain HTTP on loopback). No public
registry is searched for short names: images come from the local registry or are built here.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import docker
import docker.errors
import docker.models.containers

from suite import engine
from suite.engine import ping, socket_path
from suite.errors import MissingBinary, ServiceUnavailable
from suite.platform.service import Service
from suite.platform.services.podman_reap import Reaper

PODMAN_HINT = "apt-get install podman buildah runc"
RELEASE_LABEL = "suite.service"


class PodmanService(Service):
    name = "engine"
    port_key = None
    binaries = {"podman": PODMAN_HINT, "runc": "apt-get install runc"}
    start_timeout = 60.0

    @property
    def socket(self) -> Path:
        return socket_path(self.settings)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _conf(self, name: str) -> Path:
        return self.state_dir / name

    def registry_address(self) -> str:
        return f"{self.settings.host}:{self.settings.port('registry')}"

    def prepare(self) -> None:
        """Write the configuration, then clean what a run that died without `down` left."""
        self._configure()
        self._reap(stop_running=False)

    def _configure(self) -> None:
        super().prepare()
        state = self.state_dir
        for sub in ("storage", "run", "tmp", "networks", "volumes"):
            (state / sub).mkdir(exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self._conf("containers.conf").write_text(
            f"""[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{state / 'events.log'}"
tmp_dir = "{state / 'tmp'}"
volume_path = "{state / 'volumes'}"
static_dir = "{state / 'storage' / 'libpod'}"

[network]
network_config_dir = "{state / 'networks'}"
"""
        )
        self._conf("storage.conf").write_text(
            f"""[storage]
driver = "overlay"
graphroot = "{state / 'storage'}"
runroot = "{state / 'run'}"

[storage.options.overlay]
# no private bind mount of the storage dir onto itself: it would outlive the service
skip_mount_home = "true"
"""
        )
        self._conf("registries.conf").write_text(
            f"""unqualified-search-registries = []

[[registry]]
location = "{self.registry_address()}"
insecure = true
"""
        )

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            CONTAINERS_CONF=str(self._conf("containers.conf")),
            CONTAINERS_STORAGE_CONF=str(self._conf("storage.conf")),
            CONTAINERS_REGISTRIES_CONF=str(self._conf("registries.conf")),
            TMPDIR=str(self.state_dir / "tmp"),
        )
        return env

    def _podman(self) -> list[str]:
        """podman with the service's own flags (with :meth:`env`: the same configuration)."""
        return [self.binary("podman"), "--runtime", self.binary("runc"),
                "--cgroup-manager", "cgroupfs"]

    def argv(self) -> list[str]:
        return [*self._podman(), "system", "service", "--time=0", self.url]

    def healthy(self) -> bool:
        return ping(self.socket)

    def detail(self) -> str:
        return f"Docker API; registry {self.registry_address()} (insecure)"

    # Release replicas (containers labelled suite.service) stop with the platform and start
    # again with it: their published ports are fixed, so HAProxy's restored slots still match.
    def _release_containers(
        self, status: str | None = None
    ) -> list[docker.models.containers.Container]:
        filters = {"label": RELEASE_LABEL} | ({"status": status} if status else {})
        return list(engine.client(self.settings, timeout=60).containers.list(
            all=True, filters=filters))

    def after_start(self) -> None:
        for container in self._release_containers("exited"):
            with contextlib.suppress(docker.errors.APIError):
                container.start()

    def before_stop(self) -> None:
        with contextlib.suppress(docker.errors.DockerException, ServiceUnavailable):
            for container in self._release_containers("running"):
                with contextlib.suppress(docker.errors.APIError):
                    container.stop(timeout=5)

    # conmon outlives `podman system service`: whatever still runs, or died without its
    # conmon, would keep its mounts under the engine directory (see podman_reap).
    def after_stop(self) -> list[str]:
        return self._reap(stop_running=True)

    def _reap(self, *, stop_running: bool) -> list[str]:
        try:
            reaper = Reaper(root=self.state_dir.resolve(), podman=self._run_podman,
                            runc=self.binary("runc"), umount=shutil.which("umount"))
        except MissingBinary:
            return []  # no engine was ever started here
        done = reaper.reap(stop_running=stop_running)
        self._log(done)
        return done

    def _run_podman(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._podman(), *args], env=self.env(), cwd=self.state_dir,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def _log(self, lines: list[str]) -> None:
        if lines:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            with self.log_path.open("a") as log:
                log.writelines(f"--- {stamp} engine cleanup: {line}\n" for line in lines)
