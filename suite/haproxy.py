"""HAProxy runtime API client (the admin stats socket): weights, addresses and states change
without a reload. Each call opens the socket, sends one command and reads the answer."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from suite.errors import DeployError, ServiceUnavailable

BACKEND = "app"
PREVIEW_BACKEND = "preview"
SLOTS = 4  # server-template size per role


@dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    address: str
    port: int
    weight: int
    admin_state: str  # "ready" | "maint" | "drain"
    op_state: str  # "UP" | "DOWN" | ...


class RuntimeApi:
    def __init__(self, sock: Path, timeout: float = 5.0) -> None:
        self.sock = sock
        self.timeout = timeout

    def command(self, line: str) -> str:
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
        answer = b"".join(chunks).decode(errors="replace").strip()
        lowered = answer.lower()
        refused = ("no such", "unknown", "require", "invalid")
        if lowered.startswith(refused) or "not found" in lowered:
            raise DeployError(f"HAProxy refused {line!r}: {answer}")
        return answer

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

    def save_state(self, path: Path) -> None:
        """Dump runtime state so a restarted HAProxy keeps addresses and weights."""
        text = self.command("show servers state")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)
