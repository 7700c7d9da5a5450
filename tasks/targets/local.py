"""The local deploy target: containers on the platform's engine behind HAProxy.

The adapters of :class:`~tasks.targets.controller.Controller` for this machine:

* :class:`EngineRunner` — each replica a container through the Docker API (the platform's
  podman service or ``DOCKER_HOST``) with the workload's memory, CPU and pids limits, no
  capabilities and no new privileges, its port published on 127.0.0.1 — which only the
  platform's user reaches: the engine's firewall rule rejects every other local user
  (:meth:`PodmanService._guard_replicas`), so others reach a replica only through HAProxy; a
  missing image is pulled as the registry's read-only ``puller``; secrets are read from
  Vault as the container starts and passed only in its environment.
* :class:`HaproxyRouter` — the service's backends through the runtime API, recorded in its route
  file so a restart of HAProxy serves the same.
* :class:`FileDiscovery` — one Prometheus file-discovery record per service, each replica
  labelled with service, track (role), version and release.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import docker
import docker.errors
import httpx

from suite import engine as engine_mod
from suite.errors import DeployError, ProviderError
from suite.haproxy import Route, RouteStore, RuntimeApi, backend_name, preview_backend_name
from suite.platform.files import atomic_write
from suite.settings import Settings
from tasks.targets.base import Instance, Workload
from tasks.targets.controller import Controller, slot
from tasks.targets.state import FileStore, TargetState

READY_TIMEOUT = 90.0
#: reads one secret of one service: (service, KV path under secret/suite/, key) -> value
SecretReader = Callable[[str, str, str], str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_name(workload: Workload, role: str, index: int) -> str:
    return f"suite-{workload.service}-{workload.release}-{role}-{index}"


class EngineRunner:
    def __init__(self, settings: Settings, secrets: SecretReader | None = None,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        self.secrets = secrets
        self.ready_timeout = ready_timeout
        self._engine: docker.DockerClient | None = None

    @property
    def engine(self) -> docker.DockerClient:
        if self._engine is None:
            self._engine = engine_mod.client(self.settings)
        return self._engine

    def _environment(self, workload: Workload, role: str) -> dict[str, str]:
        env = dict(workload.env)
        env.update(PORT=str(workload.port), SUITE_SERVICE=workload.service,
                   SUITE_RELEASE=workload.release, SUITE_VERSION=workload.version,
                   SUITE_TRACK=role)
        for name, ref in workload.secrets:
            if self.secrets is None:
                raise DeployError(f"{workload.service} needs secret {name} ({ref}) but no Vault "
                                  f"reader was given to the local target")
            path, _, key = ref.partition("#")
            env[name] = self.secrets(workload.service, path, key)
        return env

    def start(self, workload: Workload, role: str, index: int) -> Instance:
        name = container_name(workload, role, index)
        server = slot(role, index, workload)
        try:
            old = self.engine.containers.get(name)
            if old.status == "running":
                port = int(old.labels.get("suite.port", "0"))
                self._wait_ready(name, port, workload.readiness)
                return Instance(name, server, port, workload.release)
            old.remove(force=True)
        except docker.errors.NotFound:
            pass
        port = _free_port()
        self._pull(workload.image)
        try:
            self.engine.containers.run(
                workload.image, name=name, detach=True,
                environment=self._environment(workload, role),
                ports={f"{workload.port}/tcp": ("127.0.0.1", port)},
                volumes={m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                         for m in workload.mounts},
                labels={"suite.service": workload.service, "suite.release": workload.release,
                        "suite.role": role, "suite.version": workload.version,
                        "suite.port": str(port)},
                mem_limit=workload.memory_bytes, memswap_limit=workload.memory_bytes,
                nano_cpus=int(workload.cpus * 1e9), pids_limit=workload.pids,
                cap_drop=["ALL"], security_opt=["no-new-privileges"],
            )
        except docker.errors.APIError as exc:
            # the message of the engine never carries the environment (where secrets are)
            raise DeployError(f"starting {name} from {workload.image} failed: "
                              f"{exc.explanation or exc}") from exc
        try:
            self._wait_ready(name, port, workload.readiness)
        except DeployError:
            self.remove(Instance(name, server, port, workload.release))
            raise
        return Instance(name, server, port, workload.release)

    def _pull(self, image: str) -> None:
        """Pull ``image`` when the engine lacks it, as the registry's ``puller`` (the registry
        answers nobody without credentials, and the puller can never push)."""
        try:
            engine_mod.ensure_pulled(self.engine, self.settings, image)
        except ProviderError as exc:
            raise DeployError(str(exc)) from exc

    def _wait_ready(self, name: str, port: int, path: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        url = f"http://127.0.0.1:{port}{path}"
        while time.monotonic() < deadline:
            try:
                if 200 <= httpx.get(url, timeout=2).status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            try:
                container = self.engine.containers.get(name)
                if container.status in ("exited", "dead"):
                    logs = container.logs(tail=20).decode(errors="replace")
                    raise DeployError(f"{name} exited before it was ready (exit "
                                      f"{container.attrs.get('State', {}).get('ExitCode')}):"
                                      f"\n{logs}")
            except docker.errors.NotFound as exc:
                raise DeployError(f"{name} disappeared before it was ready") from exc
            time.sleep(0.3)
        raise DeployError(f"{name} not ready at {url} within {self.ready_timeout:.0f}s "
                          f"(readiness: GET {path} must answer 2xx)")

    def remove(self, instance: Instance) -> None:
        try:
            self.engine.containers.get(instance.container).remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise DeployError(f"removing {instance.container} failed: {exc}") from exc

    def running(self, instance: Instance) -> bool:
        try:
            return bool(self.engine.containers.get(instance.container).status == "running")
        except docker.errors.NotFound:
            return False

    def sweep(self, service: str, keep: set[str]) -> list[str]:
        """Remove the containers of ``service`` (by their ``suite.service`` label) that ``keep``
        does not name, and return their names: replicas a run started and died before it saved
        them in the target state, which nothing would ever route, judge or remove."""
        try:
            found = self.engine.containers.list(
                all=True, filters={"label": f"suite.service={service}"})
        except docker.errors.APIError as exc:
            raise DeployError(f"listing the containers of {service} failed: "
                              f"{exc.explanation or exc}") from exc
        gone = []
        for container in found:
            if container.name in keep:
                continue
            self.remove(Instance(container.name, "", 0, container.labels.get("suite.release", "")))
            gone.append(str(container.name))
        return sorted(gone)


class HaproxyRouter:
    """Applies a route at runtime, then records it (the record rebuilds the configuration)."""

    def __init__(self, settings: Settings) -> None:
        self.routes = RouteStore(settings.dir("haproxy", "routes"))
        self.runtime = RuntimeApi(settings.dir("haproxy", "admin.sock"))

    def publish(self, route: Route) -> None:
        known = self.routes.get(route.service)
        if known is None:
            raise DeployError(f"service {route.service!r} has no HAProxy backend; register it "
                              f"first: `suite services add PATH_OR_GIT_URL`")
        route = Route(route.service, known.host, route.health_path, route.live, route.preview,
                      release=route.release)
        self.runtime.sync(backend_name(route.service), route.live)
        self.runtime.sync(preview_backend_name(route.service), route.preview)
        self.routes.put(route)

    def withdraw(self, service: str) -> None:
        known = self.routes.get(service)
        if known is None:
            return
        empty = Route(service, known.host, known.health_path)
        backends = self.runtime.backends()
        for name in (backend_name(service), preview_backend_name(service)):
            if name in backends:
                self.runtime.sync(name, ())
        self.routes.put(empty)


class FileDiscovery:
    def __init__(self, settings: Settings) -> None:
        self.folder = settings.dir("prometheus", "targets")

    def publish(self, state: TargetState) -> None:
        path = self.folder / f"svc-{state.service}.json"
        groups = [{"targets": [f"127.0.0.1:{inst.port}"],
                   "labels": {"service": state.service, "track": role,
                              "git": track.workload.version, "release": inst.release,
                              "slot": inst.slot}}
                  for role, track in state.tracks() for inst in track.instances]
        if groups:
            atomic_write(path, json.dumps(groups))
        else:
            path.unlink(missing_ok=True)


def vault_reader(settings: Settings) -> SecretReader:
    """Each secret is read with a token minted for the workload's service alone (policy
    ``suite-service-<service>``, one use): never with the worker's own token, which Vault
    denies every service's secrets; a ref outside ``services/<service>/`` is refused first."""
    def read(service: str, path: str, key: str) -> str:
        from suite import vault

        return vault.get_service_secret(vault.client(settings), service, path, key)

    return read


class LocalTarget(Controller):
    """The controller wired to this machine's engine, HAProxy, Prometheus and Vault."""

    def __init__(self, settings: Settings, ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        super().__init__(FileStore(settings.dir("targets", "local")),
                         EngineRunner(settings, vault_reader(settings), ready_timeout),
                         HaproxyRouter(settings), FileDiscovery(settings))
