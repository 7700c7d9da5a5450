"""Shared fixtures. Integration tests get a real local platform started by the same code as
`suite up`, under its own temporary SUITE_HOME and free ports: a user's platform is never touched.

Platform services run in sessions of their own, so a test session killed before its teardown
(a timeout's SIGTERM, a SIGKILL) leaves its whole platform running, containers included. Each
test platform therefore names its owner (the pytest process) in its home, and the next session
that starts a platform stops those whose owner is gone (:func:`reap_orphaned_platforms`).
"""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from suite import prefect_http
from suite import settings as settings_mod
from suite.errors import SuiteError
from suite.platform import credentials, manager
from suite.settings import DEFAULT_PORTS, Settings, child_env

REPO = Path(__file__).resolve().parents[1]
#: set while the session platform starts (tests/integration/test_child_env.py looks for it)
OPERATOR_SECRET = ("AWS_SECRET_ACCESS_KEY", "operator-canary-not-for-children")


@pytest.fixture(scope="session", autouse=True)
def no_personal_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never see a person's `suite login` cache (~/.config/suite/token): the CLI and
    every child they start act as the test platform's operator unless a test logs in."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SUITE_TOKEN_FILE", str(tmp_path_factory.mktemp("login") / "token"))
        yield


def prefect_api(api: str, method: str, path: str, *, json: object = None,
                params: dict[str, str] | None = None) -> httpx.Response:
    """A raw Prefect API call that rides out SQLite's "database is locked" (503): the
    platform's workers, scheduler and triggers write at the same time as the tests."""
    return prefect_http.request(api, method, path, json=json, params=params)


def flow_deployment(api: str, flow: str, name: str, entrypoint: str) -> str:
    """A deployment on the platform's work pool of a flow file in this repository (the worker
    runs it from the checkout): its id."""
    flow_id = prefect_api(api, "POST", "/flows/", json={"name": flow}).json()["id"]
    resp = prefect_api(api, "POST", "/deployments/", json={
        "name": name, "flow_id": flow_id, "work_pool_name": "suite",
        "entrypoint": entrypoint, "path": str(REPO),
        "pull_steps": [{"prefect.deployments.steps.set_working_directory":
                        {"directory": str(REPO)}}],
        "enforce_parameter_schema": False,
    })
    assert resp.status_code in (200, 201), resp.text
    return str(resp.json()["id"])


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


OWNER_FILE = "pytest-owner.json"


def claim(home: Path) -> None:
    """Record this pytest process as the owner of the platform under ``home``."""
    me = psutil.Process()
    home.mkdir(parents=True, exist_ok=True)
    (home / OWNER_FILE).write_text(json.dumps({"pid": me.pid,
                                               "create_time": me.create_time()}))


def _owner_alive(marker: Path) -> bool:
    try:
        owner = json.loads(marker.read_text())
        return abs(psutil.Process(owner["pid"]).create_time() - owner["create_time"]) < 1.0
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False


def reap_orphaned_platforms(root: Path) -> list[Path]:
    """`suite down` every test platform under ``root``'s sessions whose owner is gone."""
    reaped: list[Path] = []
    for pattern in (f"pytest-*/*/{OWNER_FILE}", f"pytest-*/*/*/{OWNER_FILE}"):
        for marker in root.glob(pattern):
            if marker.parent.is_symlink() or _owner_alive(marker):
                continue
            home = marker.parent
            try:
                manager.down(settings_mod.load({"SUITE_HOME": str(home)}))
            except (SuiteError, OSError) as exc:  # hygiene only: never fail this session
                warnings.warn(f"could not stop the orphaned test platform {home}: {exc}",
                              stacklevel=1)
                continue
            marker.unlink(missing_ok=True)
            reaped.append(home)
    return reaped


@pytest.fixture(scope="session")
def orphans_reaped(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Platforms of earlier, killed sessions stopped before this session starts its own."""
    return reap_orphaned_platforms(tmp_path_factory.getbasetemp().parent)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory,
             orphans_reaped: list[Path]) -> Iterator[Settings]:
    """The whole local platform (Vault, Prefect + 2 workers, MLflow, Prometheus, registry)."""
    settings = make_settings(tmp_path_factory.mktemp("suite-home"))
    claim(settings.home)
    try:
        # an operator's credential in the environment `suite up` runs in: no child may see it
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(OPERATOR_SECRET[0], OPERATOR_SECRET[1])
            manager.up(settings)
    except Exception:
        manager.down(settings)
        raise
    # MLflow clients in this process (MlflowClient, models.registry) act as the platform user
    credentials.use_mlflow(settings)
    yield settings
    manager.down(settings)


@pytest.fixture(scope="session")
def platform_env(platform: Settings) -> dict[str, str]:
    """Environment for a subprocess (CLI, flow) that should talk to the test platform."""
    env = child_env(platform)
    env["PREFECT_API_URL"] = platform.prefect_api_url
    # Prefect's own client in the subprocess (the prefect CLI, a flow) needs the auth string
    env["PREFECT_API_AUTH_STRING"] = str(prefect_http.auth_string(platform.prefect_api_url))
    # and MLflow's client the platform user's login (child_env never copies it)
    env.update(credentials.mlflow_env(platform))
    return env
