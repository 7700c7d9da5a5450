"""The local deploy target: model-server containers on the platform's engine, HAProxy weights.

Stable, canary and preview replicas are containers started through the Docker API (the
platform's podman service or ``DOCKER_HOST``), each publishing its port on 127.0.0.1 and
mounting the model directory read-only. HAProxy's fixed slots (``stable1..4``, ``canary1..4``,
``preview1..4``) are pointed at them through the runtime API, with no reload. Each replica's
``/metrics`` is registered with Prometheus by file-based discovery, labelled with service, role,
version and release. What runs where is kept in ``targets/local/<service>.json`` (atomic
writes), so every operation is idempotent and survives a crashed flow.
"""

from __future__ import annotations

import json
import math
import socket
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from suite import engine as engine_mod
from suite.errors import DeployError
from suite.haproxy import BACKEND, PREVIEW_BACKEND, SLOTS, RuntimeApi
from suite.platform.files import atomic_write
from suite.settings import Settings
from tasks.targets.base import Deployment, Instance, Role, Workload

CONTAINER_PORT = 8080
READY_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def split_weights(canary_percent: int, n_stable: int, n_canary: int) -> tuple[int, int]:
    """Per-server HAProxy weights (0..256) giving the canary ``canary_percent`` of traffic."""
    if not 0 <= canary_percent <= 100:
        raise DeployError(f"canary weight {canary_percent} % is outside 0..100")
    if n_canary == 0 or canary_percent == 0:
        return 100, 0
    if n_stable == 0 or canary_percent == 100:
        return 0, 100
    ws, wc = (100 - canary_percent) * n_canary, canary_percent * n_stable
    g = math.gcd(ws, wc)
    ws, wc = ws // g, wc // g
    top = max(ws, wc)
    if top > 256:
        ws, wc = max(1, round(ws * 256 / top)), max(1, round(wc * 256 / top))
    return ws, wc


class LocalTarget:
    name = "local"

    def __init__(self, settings: Settings, ready_timeout: float = READY_TIMEOUT) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.runtime = RuntimeApi(settings.dir("haproxy", "admin.sock"))
        self._engine: docker.DockerClient | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def engine(self) -> docker.DockerClient:
        if self._engine is None:
            self._engine = engine_mod.client(self.settings)
        return self._engine

    def _state_path(self, service: str) -> Path:
        return self.settings.dir("targets", "local", f"{service}.json")

    def _load(self, service: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_path(service).read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("service", service)
        data.setdefault("roles", {})
        data.setdefault("canary_weight", 0)
        return data

    def _save(self, state: dict[str, Any]) -> None:
        atomic_write(self._state_path(state["service"]), json.dumps(state, indent=2))

    def _check_single_service(self, service: str) -> None:
        folder = self.settings.dir("targets", "local")
        for path in folder.glob("*.json") if folder.exists() else []:
            other = json.loads(path.read_text())
            if path.stem != service and other.get("roles", {}).get("stable"):
                raise DeployError(
                    f"the local target's HAProxy already serves service {path.stem!r}; one "
                    f"service per platform (roll it back or use another SUITE_HOME)"
                )

    @staticmethod
    def _workload(entry: dict[str, Any] | None) -> Workload | None:
        if not entry:
            return None
        data = dict(entry["workload"])
        data["env"] = tuple(tuple(kv) for kv in data.get("env", ()))
        return Workload(**data)

    @staticmethod
    def _instances(entry: dict[str, Any] | None) -> list[Instance]:
        return [Instance(**i) for i in (entry or {}).get("instances", [])]

    def _deployment(self, state: dict[str, Any]) -> Deployment:
        roles = state["roles"]
        canary = roles.get("canary") or roles.get("preview")
        return Deployment(
            target=self.name, service=state["service"],
            stable=self._workload(roles.get("stable")), canary=self._workload(canary),
            canary_weight=int(state["canary_weight"]),
            instances={role: tuple(self._instances(entry)) for role, entry in roles.items()
                       if entry},
        )

    def status(self, service: str) -> Deployment:
        return self._deployment(self._load(service))

    # -- containers ----------------------------------------------------------------------
    def _container_name(self, workload: Workload, role: str, index: int) -> str:
        return f"suite-{workload.service}-{workload.release}-{role}-{index}"

    def _start(self, workload: Workload, role: str, index: int) -> Instance:
        name = self._container_name(workload, role, index)
        try:
            old = self.engine.containers.get(name)
            if old.status == "running":
                port = int(old.labels.get("suite.port", "0"))
                self._wait_ready(name, port)
                return Instance(name, f"{role}{index}", port, workload.release)
            old.remove(force=True)
        except docker.errors.NotFound:
            pass
        port = _free_port()
        env = dict(workload.env)
        env.update(MODEL_NAME=workload.model_name, MODEL_VERSION=workload.model_version)
        try:
            self.engine.containers.run(
                workload.image,
                command=["--model-uri", "/model/model.onnx", "--host", "0.0.0.0",
                         "--port", str(CONTAINER_PORT), "--model-name", workload.model_name,
                         "--model-version", workload.model_version],
                name=name, detach=True, environment=env,
                ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)},
                volumes={workload.model_dir: {"bind": "/model", "mode": "ro"}},
                labels={"suite.service": workload.service, "suite.release": workload.release,
                        "suite.role": role, "suite.version": workload.version,
                        "suite.port": str(port)},
                read_only=True, tmpfs={"/tmp": "size=16m"},  # noqa: S108 - in the container
            )
        except docker.errors.APIError as exc:
            raise DeployError(f"starting {name} from {workload.image} failed: "
                              f"{exc.explanation or exc}") from exc
        self._wait_ready(name, port)
        return Instance(name, f"{role}{index}", port, workload.release)

    def _wait_ready(self, name: str, port: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        url = f"http://127.0.0.1:{port}/readyz"
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            try:
                container = self.engine.containers.get(name)
                if container.status in ("exited", "dead"):
                    logs = container.logs(tail=20).decode(errors="replace")
                    raise DeployError(f"{name} exited before it was ready:\n{logs}")
            except docker.errors.NotFound as exc:
                raise DeployError(f"{name} disappeared before it was ready") from exc
            time.sleep(0.3)
        raise DeployError(f"{name} not ready at {url} within {self.ready_timeout:.0f}s")

    def _remove(self, instances: list[Instance]) -> None:
        for inst in instances:
            self._unregister_metrics(inst)
            try:
                self.engine.containers.get(inst.container).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                raise DeployError(f"removing {inst.container} failed: {exc}") from exc

    # -- metrics discovery ---------------------------------------------------------------
    def _targets_file(self, inst: Instance) -> Path:
        return self.settings.dir("prometheus", "targets", f"{inst.container}.json")

    def _register_metrics(self, workload: Workload, role: str, inst: Instance) -> None:
        labels = {"service": workload.service, "track": role, "git": workload.version,
                  "release": workload.release, "slot": inst.slot}
        atomic_write(self._targets_file(inst),
                     json.dumps([{"targets": [f"127.0.0.1:{inst.port}"], "labels": labels}]))

    def _unregister_metrics(self, inst: Instance) -> None:
        self._targets_file(inst).unlink(missing_ok=True)

    # -- HAProxy -------------------------------------------------------------------------
    @staticmethod
    def _backend(role: str) -> str:
        return PREVIEW_BACKEND if role == Role.PREVIEW else BACKEND

    def _route(self, role: str, instances: list[Instance], weight: int) -> None:
        backend = self._backend(role)
        used = set()
        for inst in instances:
            slot = inst.slot
            used.add(slot)
            self.runtime.set_server(backend, slot, address="127.0.0.1", port=inst.port,
                                    weight=weight, state="ready")
        for i in range(1, SLOTS + 1):
            slot = f"{role}{i}"
            if slot not in used:
                self.runtime.set_server(backend, slot, weight=0, state="maint")

    def _apply_weights(self, state: dict[str, Any]) -> None:
        roles = state["roles"]
        stable = self._instances(roles.get("stable"))
        canary = self._instances(roles.get("canary"))
        ws, wc = split_weights(int(state["canary_weight"]), len(stable), len(canary))
        self._route("stable", stable, ws)
        self._route("canary", canary, wc)

    # -- the protocol ----------------------------------------------------------------------
    def reconcile(self, workload: Workload, role: Role) -> Deployment:
        role = Role(role)
        self._check_single_service(workload.service)
        state = self._load(workload.service)
        roles = state["roles"]
        current = roles.get(role.value)
        if current and self._workload(current) == workload:
            instances = self._instances(current)
            if all(self._running(i) for i in instances):
                if role != Role.PREVIEW:
                    self._apply_weights(state)
                return self._deployment(state)
        if role == Role.STABLE and current:
            return self._rolling(state, workload)
        old = self._instances(current)
        instances = [self._start(workload, role.value, i) for i in
                     range(1, workload.replicas + 1)]
        for inst in instances:
            self._register_metrics(workload, role.value, inst)
        roles[role.value] = {"workload": asdict(workload),
                             "instances": [asdict(i) for i in instances]}
        if role == Role.PREVIEW:
            self._route("preview", instances, 100)
        else:
            self._apply_weights(state)
        self._save(state)
        self._remove([i for i in old if i.release != workload.release])
        return self._deployment(state)

    def problems(self, service: str) -> list[str]:
        """Replicas that should run but do not (a crashed or killed container)."""
        state = self._load(service)
        found = []
        for role, entry in state["roles"].items():
            if role == "previous":
                continue
            for inst in self._instances(entry):
                if not self._running(inst):
                    found.append(f"{role} replica {inst.container} is not running")
        return found

    def _running(self, inst: Instance) -> bool:
        try:
            return bool(self.engine.containers.get(inst.container).status == "running")
        except docker.errors.NotFound:
            return False

    def _rolling(self, state: dict[str, Any], workload: Workload) -> Deployment:
        """Replace stable replicas one at a time; each new one must be ready before the swap."""
        roles = state["roles"]
        old = self._instances(roles["stable"])
        new: list[Instance] = []
        for index in range(1, workload.replicas + 1):
            inst = self._start(workload, "stable", index)
            self._register_metrics(workload, "stable", inst)
            new.append(inst)
            replaced = [o for o in old if o.slot == inst.slot]
            remaining = [o for o in old if o.slot != inst.slot and
                         int(o.slot.removeprefix("stable")) > index]
            roles["stable"] = {"workload": asdict(workload),
                               "instances": [asdict(i) for i in new + remaining]}
            self._apply_weights(state)
            self._save(state)
            time.sleep(0.5)  # let in-flight requests on the old replica finish
            self._remove(replaced)
        leftover = [o for o in old if int(o.slot.removeprefix("stable")) > workload.replicas]
        self._remove(leftover)
        return self._deployment(state)

    def set_weights(self, service: str, canary_percent: int) -> Deployment:
        state = self._load(service)
        if not state["roles"].get("canary"):
            raise DeployError(f"service {service!r} has no canary to send {canary_percent} % to")
        split_weights(canary_percent, 1, 1)  # validates the range
        state["canary_weight"] = canary_percent
        self._apply_weights(state)
        self._save(state)
        return self._deployment(state)

    def promote(self, service: str) -> Deployment:
        state = self._load(service)
        roles = state["roles"]
        source = "canary" if roles.get("canary") else "preview" if roles.get("preview") else None
        if source is None:
            raise DeployError(f"service {service!r} has nothing to promote (no canary/preview)")
        workload = self._workload(roles[source])
        assert workload is not None
        stable_wl = self._workload(roles.get("stable"))
        replicas = max(workload.replicas, stable_wl.replicas if stable_wl else 1)
        workload = replace(workload, replicas=replicas)
        moved = self._instances(roles[source])
        new: list[Instance] = []
        for index in range(1, replicas + 1):
            if index <= len(moved):
                inst = replace(moved[index - 1], slot=f"stable{index}")
            else:
                inst = self._start(workload, "stable", index)
            self._register_metrics(workload, "stable", inst)
            new.append(inst)
        old = self._instances(roles.get("stable"))
        roles["previous"] = roles.get("stable") if source == "preview" else None
        roles["stable"] = {"workload": asdict(workload), "instances": [asdict(i) for i in new]}
        roles[source] = None
        state["canary_weight"] = 0
        self._apply_weights(state)
        if source == "preview":
            self._route("preview", [], 0)
        self._save(state)
        if source == "canary":
            time.sleep(0.5)
            self._remove(old)
        else:
            for inst in old:
                self._unregister_metrics(inst)
        return self._deployment(state)

    def rollback(self, service: str) -> Deployment:
        state = self._load(service)
        roles = state["roles"]
        if roles.get("canary") or roles.get("preview"):
            doomed = self._instances(roles.get("canary")) + self._instances(roles.get("preview"))
            roles["canary"] = roles["preview"] = None
            state["canary_weight"] = 0
            self._apply_weights(state)
            self._route("preview", [], 0)
            self._save(state)
            self._remove(doomed)
        elif roles.get("previous"):
            # blue-green after the switch: the old colour is still running; switch back
            doomed = self._instances(roles.get("stable"))
            roles["stable"], roles["previous"] = roles["previous"], None
            previous = self._workload(roles["stable"])
            assert previous is not None
            for inst in self._instances(roles["stable"]):
                self._register_metrics(previous, "stable", inst)
            self._apply_weights(state)
            self._save(state)
            self._remove(doomed)
        return self._deployment(state)

    def finalize(self, service: str) -> Deployment:
        state = self._load(service)
        previous = self._instances(state["roles"].get("previous"))
        state["roles"]["previous"] = None
        self._save(state)
        self._remove(previous)
        return self._deployment(state)

    def teardown(self, service: str) -> None:
        """Remove every replica of ``service`` and free the HAProxy slots (tests, `suite down`)."""
        state = self._load(service)
        everything = [i for entry in state["roles"].values() for i in self._instances(entry)]
        for role in ("stable", "canary", "preview"):
            self._route(role, [], 0)
        self._remove(everything)
        self._state_path(service).unlink(missing_ok=True)
