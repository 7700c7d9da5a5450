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

import base64
import contextlib
import json
import os
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
from suite.platform import credentials
from suite.platform.files import atomic_write
from suite.platform.service import Service
from suite.platform.services.podman_reap import Reaper

PODMAN_HINT = "apt-get install podman buildah runc"
RELEASE_LABEL = "suite.service"
#: names the firewall rule that keeps other local users off the replicas (``iptables -S``)
GUARD_COMMENT = "suite: replicas answer only uid 0"


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
        self._write_auth()
        self._conf("registries.conf").write_text(
            f"""unqualified-search-registries = []

[[registry]]
location = "{self.registry_address()}"
insecure = true
"""
        )

    def _write_auth(self) -> None:
        """The engine's own login to the platform's registry, as ``puller``: a pull that no
        client gave credentials for (a replica's image missing from the store) still works,
        and the engine can never push with it. 0600, read only by root."""
        name, secret = credentials.registry_login(self.settings, "puller")
        token = base64.b64encode(f"{name}:{secret}".encode()).decode()
        atomic_write(self._conf("auth.json"), json.dumps(
            {"auths": {self.registry_address(): {"auth": token}}}), mode=0o600)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            REGISTRY_AUTH_FILE=str(self._conf("auth.json")),
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
        self._guard_replicas()
        for container in self._release_containers("exited"):
            with contextlib.suppress(docker.errors.APIError):
                container.start()

    def _subnets(self) -> list[str]:
        networks = engine.client(self.settings, timeout=60).networks.list()
        return sorted({str(cfg["Subnet"]) for net in networks
                       for cfg in ((net.attrs.get("IPAM") or {}).get("Config") or [])
                       if cfg.get("Subnet")})

    def _guard_replicas(self) -> None:
        """Replicas answer only the platform's own user: a firewall rule per engine subnet
        rejects every packet another local user sends to a container address — and a
        published port too, since the engine DNATs ``127.0.0.1:PORT`` to the container's
        address before the filter sees it. HAProxy, Prometheus' scrape, the warm-up and the
        readiness checks run as the platform's user and still reach them. The rule is host-wide
        and stays after ``suite down`` (it only ever rejects other users)."""
        if os.geteuid() != 0:
            return  # a rootless engine: its containers live in that user's own namespace
        for subnet in self._subnets():
            tool = self.binary("ip6tables" if ":" in subnet else "iptables")
            rule = ["OUTPUT", "-d", subnet, "-m", "owner", "!", "--uid-owner", "0",
                    "-m", "comment", "--comment", GUARD_COMMENT, "-j", "REJECT"]
            if subprocess.run([tool, "-w", "5", "-C", *rule], capture_output=True,
                              check=False).returncode == 0:
                continue
            added = subprocess.run([tool, "-w", "5", "-I", *rule], capture_output=True,
                                   text=True, check=False)
            if added.returncode != 0:
                raise ServiceUnavailable(
                    f"cannot add the firewall rule that keeps other local users off the "
                    f"replicas' subnet {subnet} ({tool} -I {' '.join(rule)}: "
                    f"{added.stderr.strip()[-300:]}); the engine needs NET_ADMIN and "
                    f"`apt-get install iptables`")

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
