"""Prefect process workers on the ``suite`` pool: the distributed executor.

Each worker logs in to Vault with AppRole: its environment names the role-id and secret-id files,
never a token. Workers stop on SIGINT (SIGTERM makes them wait 20-30 s).

Every flow run they start sends a heartbeat event every :data:`HEARTBEAT_SECONDS`
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``): when they stop, the zombie-run automation created by
``suite up`` (``suite/deployments.py``) marks the run Crashed (``docs/reliability.md``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from suite import prefect_http
from suite.platform import credentials
from suite.platform.service import Service
from suite.platform.services.prefect import PREFECT_HINT, WORK_POOL, prefect_env
from suite.settings import Settings
from suite.vault import vault_dir

#: seconds between a flow run's heartbeat events (Prefect's minimum is 30)
HEARTBEAT_SECONDS = 30


class WorkerService(Service):
    port_key = None
    binaries = {"prefect": PREFECT_HINT}
    stop_signal = signal.SIGINT
    start_timeout = 60.0
    requires = ("prefect", "vault")

    def __init__(self, settings: Settings, index: int) -> None:
        super().__init__(settings)
        self.index = index
        self.name = f"worker-{index}"

    @property
    def worker_name(self) -> str:
        return f"suite-worker-{self.index}"

    @property
    def state_dir(self) -> Path:
        return self.settings.dir("prefect")

    @property
    def url(self) -> str:
        return f"{self.settings.url('prefect')}/work-pools/work-pool/{WORK_POOL}"

    def env(self) -> dict[str, str]:
        env = prefect_env(self.settings)
        # the flow runs it starts (train, release) register versions and move aliases
        env.update(credentials.mlflow_env(self.settings))
        vdir = vault_dir(self.settings)
        env.update(
            PREFECT_WORKER_QUERY_SECONDS=str(self.settings.worker_query_seconds),
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
            SUITE_VAULT_ROLE_ID_FILE=str(vdir / "worker-role-id"),
            SUITE_VAULT_SECRET_ID_FILE=str(vdir / "worker-secret-id"),
        )
        return env

    def argv(self) -> list[str]:
        return [self.binary("prefect"), "worker", "start", "--pool", WORK_POOL,
                "--type", "process", "--name", self.worker_name]

    def healthy(self) -> bool:
        try:
            resp = prefect_http.request(
                self.settings.prefect_api_url, "POST", f"/work_pools/{WORK_POOL}/workers/filter",
                json={}, timeout=5, delays=(),
            )
            resp.raise_for_status()
        except httpx.HTTPError:
            return False
        return any(
            w.get("name") == self.worker_name and w.get("status") == "ONLINE" for w in resp.json()
        )

    def detail(self) -> str:
        return f"pool {WORK_POOL} as {self.worker_name}"
