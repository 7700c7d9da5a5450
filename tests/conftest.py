"""Shared fixtures. Integration tests get a real local platform started by the same code as
`suite up`, under its own temporary SUITE_HOME and free ports: a user's platform is never touched.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from suite.platform import manager
from suite.settings import DEFAULT_PORTS, Settings, child_env

REPO = Path(__file__).resolve().parents[1]


def free_port(exclude: set[int] | None = None) -> int:
    """A free loopback port whose neighbour (port + 1) is free too (Vault's cluster port)."""
    exclude = exclude or set()
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in exclude or port + 1 in exclude or port >= 65535:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def free_ports() -> dict[str, int]:
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for name in DEFAULT_PORTS:
        port = free_port(taken)
        taken.update({port, port + 1})
        ports[name] = port
    return ports


def make_settings(home: Path, workers: int = 2) -> Settings:
    return Settings(home=home, ports=free_ports(), workers=workers)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The whole local platform (Vault, Prefect + 2 workers, MLflow, Prometheus, registry)."""
    settings = make_settings(tmp_path_factory.mktemp("suite-home"))
    try:
        manager.up(settings)
    except Exception:
        manager.down(settings)
        raise
    yield settings
    manager.down(settings)


@pytest.fixture(scope="session")
def platform_env(platform: Settings) -> dict[str, str]:
    """Environment for a subprocess (CLI, flow) that should talk to the test platform."""
    env = child_env(platform)
    env["PREFECT_API_URL"] = platform.prefect_api_url
    env["MLFLOW_TRACKING_URI"] = platform.mlflow_uri
    return env
