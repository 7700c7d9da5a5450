"""HAProxy for the local target: per-service backends in the configuration, and the runtime API
client (the admin stats socket) that adds, re-weights and removes servers without a reload.

Each registered service has a backend ``be_<service>`` (its stable and canary servers, weighted)
and ``pv_<service>`` (the blue-green preview), chosen by the request's Host header on the release
and preview addresses. A service's servers are recorded in ``haproxy/routes/<service>.json``
(atomic): the runtime API applies a change at once, and the configuration, rendered from every
route file, reproduces it on a restart or reload. Only adding or removing a service reloads
HAProxy (master-worker with listeners handed to the new worker: no connection is refused).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from suite.errors import ConfigError, DeployError, ServiceUnavailable
from suite.platform.files import atomic_write

CHECK = "check inter 1s fall 2 rise 2"
#: per-server connection cap: a replica is never handed more than this at once (HAProxy queues)
SERVER_MAXCONN = 256
#: how long a server leaving a backend may finish the requests it is answering before the
#: rest are cut (HAProxy's own server timeout is 30 s; a canary request takes milliseconds)
DRAIN_SECONDS = 10.0


def backend_name(service: str) -> str:
    """Prometheus' relabelling (``suite/platform/services/prometheus.py``) reads the service
    back out of this name: keep the two in step."""
    return f"be_{service}"


def preview_backend_name(service: str) -> str:
    return f"pv_{service}"


@dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    address: str
    port: int
    weight: int
    admin_state: str  # "ready" | "maint" | "drain"
    op_state: str  # "UP" | "DOWN" | ...


@dataclass(frozen=True)
class Server:
    name: str  # <role>-<index>-<release tag>, e.g. canary-1-3f9a2c
    port: int
    weight: int
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class Route:
    """What HAProxy serves for one service: its host, health check and servers."""

    service: str
    host: str
    health_path: str = "/healthz"
    live: tuple[Server, ...] = ()
    preview: tuple[Server, ...] = ()
    version: int = 1
    #: the release whose canary/preview these servers are, while it is unfinished ("" once
    #: none is in progress): at a start of HAProxy such servers get weight 0 (never judged)
    release: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Route:
        data = json.loads(text)
        for key in ("live", "preview"):
            data[key] = tuple(Server(**s) for s in data.get(key, ()))
        return cls(**data)


class RouteStore:
    """``haproxy/routes/<service>.json``: the durable record of each service's servers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, service: str) -> Path:
        return self.folder / f"{service}.json"

    def get(self, service: str) -> Route | None:
        try:
            return Route.from_json(self.path(service).read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self.path(service)} is not a valid route record ({exc}); "
                              f"`suite services add` the service again") from exc

    def put(self, route: Route) -> None:
        atomic_write(self.path(route.service), route.to_json())

    def remove(self, service: str) -> None:
        self.path(service).unlink(missing_ok=True)

    def all(self) -> list[Route]:
        found = (self.get(p.stem) for p in sorted(self.folder.glob("*.json"))) \
            if self.folder.exists() else iter(())
        return [r for r in found if r is not None]


def _server_line(server: Server) -> str:
    return (f"    server {server.name} {server.address}:{server.port} weight {server.weight} "
            f"maxconn {SERVER_MAXCONN} {CHECK}")


#: the roles of servers that a release under test adds (``<role>-<index>-<tag>``)
UNJUDGED_ROLES = ("canary-", "preview-")


def held(route: Route) -> Route:
    """``route`` as HAProxy serves it at its start: the canary and preview servers of an
    unfinished release get weight 0 (the run that judged them may be gone; the reconciler
    decides), and stable gets all the traffic."""
    if not route.release:
        return route

    def hold(servers: tuple[Server, ...]) -> tuple[Server, ...]:
        return tuple(replace(s, weight=0) if s.name.startswith(UNJUDGED_ROLES)
                     else replace(s, weight=s.weight or 1) for s in servers)

    return replace(route, live=hold(route.live), preview=hold(route.preview))


def _backend(name: str, route: Route, servers: tuple[Server, ...]) -> str:
    lines = [f"backend {name}", "    balance roundrobin",
             f"    option httpchk GET {route.health_path}", "    http-check expect rstatus ^2"]
    lines += [_server_line(s) for s in servers]
    return "\n".join(lines)


def render_routes(routes: list[Route], at_start: bool = False) -> tuple[str, str, str]:
    """(release frontend rules, preview frontend rules, backends) of every service.

    ``at_start``: HAProxy starts (not a reload while releases run): unfinished releases'
    canaries and previews are :func:`held` at weight 0."""
    release: list[str] = []
    preview: list[str] = []
    backends: list[str] = []
    for route in sorted((held(r) if at_start else r for r in routes), key=lambda r: r.service):
        be, pv = backend_name(route.service), preview_backend_name(route.service)
        match = f"{{ req.hdr(host),field(1,:),lower -m str {route.host} }}"
        release.append(f"    use_backend {be} if {match}")
        preview.append(f"    use_backend {pv} if {match}")
        backends.append(_backend(be, route, route.live))
        backends.append(_backend(pv, route, route.preview))
    return "\n".join(release), "\n".join(preview), "\n\n".join(backends)


class RuntimeApi:
    def __init__(self, sock: Path, timeout: float = 5.0) -> None:
        self.sock = sock
        self.timeout = timeout

    def command(self, line: str) -> str:
        answer = self._send(line)
        lowered = answer.lower()
        refused = ("no such", "unknown", "require", "invalid")
        if lowered.startswith(refused) or "not found" in lowered:
            raise DeployError(f"HAProxy refused {line!r}: {answer}")
        return answer

    def _send(self, line: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(str(self.sock))
                conn.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError as exc:
            raise ServiceUnavailable(
                f"HAProxy runtime API at {self.sock} does not answer ({exc}); `suite up`"
            ) from exc
        return b"".join(chunks).decode(errors="replace").strip()

    def set_server(self, backend: str, server: str, *, address: str | None = None,
                   port: int | None = None, weight: int | None = None,
                   state: str | None = None) -> None:
        if address is not None and port is not None:
            self.command(f"set server {backend}/{server} addr {address} port {port}")
        if weight is not None:
            if not 0 <= weight <= 256:
                raise DeployError(f"weight {weight} for {server} is outside 0..256")
            self.command(f"set server {backend}/{server} weight {weight}")
        if state is not None:
            if state not in ("ready", "maint", "drain"):
                raise DeployError(f"state {state!r} for {server} (expected ready|maint|drain)")
            self.command(f"set server {backend}/{server} state {state}")
            if state == "ready":
                self.command(f"enable health {backend}/{server}")

    def servers(self, backend: str | None = None) -> list[ServerState]:
        """``show servers state``: admin state bit 0x01 = maint, 0x08 = drain."""
        text = self.command(f"show servers state {backend or ''}".strip())
        rows: list[ServerState] = []
        for line in text.splitlines():
            if not line or line.startswith("#") or (line[0].isalpha() and " " not in line):
                continue
            parts = line.split()
            if len(parts) < 19 or not parts[0].isdigit():
                continue
            admin = int(parts[6])
            admin_state = "maint" if admin & 0x01 or admin & 0x02 or admin & 0x20 else (
                "drain" if admin & 0x08 or admin & 0x10 else "ready")
            op = {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}.get(parts[5], parts[5])
            rows.append(ServerState(parts[1], parts[3], parts[4], int(parts[18]), int(parts[7]),
                                    admin_state, op))
        return rows

    def sessions(self, backend: str) -> dict[str, int]:
        """Requests each server of ``backend`` is answering or has queued (``show stat``'s
        ``scur`` + ``qcur``)."""
        # not command(): a health check's last status may read "Not Found", which is no refusal
        text = self._send(f"show stat {backend} 4 -1")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines or not lines[0].startswith("#"):
            raise DeployError(f"HAProxy's show stat for {backend} answered {text[:200]!r}")
        header = lines[0].lstrip("# ").split(",")
        sv, scur, qcur = header.index("svname"), header.index("scur"), header.index("qcur")
        out: dict[str, int] = {}
        for line in lines[1:]:
            cols = line.split(",")
            if len(cols) > max(sv, scur, qcur) and cols[0] == backend:
                out[cols[sv]] = int(cols[scur] or 0) + int(cols[qcur] or 0)
        return out

    def drain(self, backend: str, names: list[str], timeout: float = DRAIN_SECONDS) -> None:
        """Wait (at most ``timeout``) until the servers ``names``, already in maintenance, have
        answered the requests they had: removing a server must not cut a request short."""
        deadline = time.monotonic() + timeout
        while names and time.monotonic() < deadline:
            busy = self.sessions(backend)
            if not any(busy.get(name, 0) for name in names):
                return
            time.sleep(0.05)

    def backends(self) -> set[str]:
        return {line.strip() for line in self.command("show backend").splitlines()
                if line.strip() and not line.startswith("#")}

    def sync(self, backend: str, servers: tuple[Server, ...]) -> None:
        """Make ``backend`` hold exactly ``servers``: new ones are added (and become healthy
        through their checks) before old ones are drained and deleted."""
        present = {s.name for s in self.servers(backend)}
        for server in servers:
            if server.name not in present:
                self.command(f"add server {backend}/{server.name} {server.address}:{server.port} "
                             f"weight {server.weight} maxconn {SERVER_MAXCONN} {CHECK}")
                self.command(f"enable health {backend}/{server.name}")
                self.command(f"enable server {backend}/{server.name}")
            else:
                self.set_server(backend, server.name, weight=server.weight)
        wanted = {s.name for s in servers}
        leaving = sorted(present - wanted)
        for name in leaving:  # no new request; the ones it is answering go on
            self.command(f"set server {backend}/{name} state maint")
        self.drain(backend, leaving)
        for name in leaving:
            self.command(f"shutdown sessions server {backend}/{name}")  # only stragglers
            answer = self.command(f"del server {backend}/{name}")
            if "deleted" not in answer.lower():
                raise DeployError(f"HAProxy did not delete {backend}/{name}: {answer}")
