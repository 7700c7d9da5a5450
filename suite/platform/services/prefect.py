"""Prefect server (UI on the same port) and the ``suite`` process work pool."""

from __future__ import annotations

import subprocess

from suite import prefect_http
from suite.errors import ServiceUnavailable
from suite.platform import api_auth, credentials
from suite.platform.service import Service, http_ok
from suite.settings import Settings, child_env

WORK_POOL = "suite"
PREFECT_HINT = "pip install prefect"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment for every Prefect process: server, workers and the CLI calls we make.

    It holds the API's auth string (read from Vault): never hand it to anything else."""
    env = child_env(settings)
    auth = api_auth.prefect_auth(settings).get_secret_value()
    prefect_http.use_auth(settings.prefect_api_url, auth)
    env["PREFECT_API_AUTH_STRING"] = auth
    env.update(
        PREFECT_HOME=str(settings.dir("prefect")),
        PREFECT_API_URL=settings.prefect_api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # the triggers service also runs automation actions: the release deployment's
        # `git.push` trigger (prefect.yaml) needs it, so an inherited `false` must not win
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED="true",
        PREFECT_UI_API_URL=settings.prefect_api_url,
        PREFECT_SERVER_API_HOST=settings.host,
        PREFECT_SERVER_API_PORT=str(settings.port("prefect")),
        MLFLOW_TRACKING_URI=settings.mlflow_uri,
    )
    # with Postgres only the server connects, with the password (server_database_env)
    if settings.database != "postgres":
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"sqlite+aiosqlite:///{settings.dir('prefect', 'prefect.db')}"
        )
    return env


def server_database_env(settings: Settings) -> dict[str, str]:
    """The Postgres connection of the server alone (workers and the CLI never touch the
    database, so they never hold its password). Prefect templates the password into the URL
    and keeps both as secrets, so the URL as written (and as Prefect shows it) has none."""
    if settings.database != "postgres":
        return {}
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL":
            f"postgresql+asyncpg://postgres:${{PREFECT_SERVER_DATABASE_PASSWORD}}@"
            f"{settings.host}:{settings.port('postgres')}/prefect",
        "PREFECT_SERVER_DATABASE_PASSWORD": credentials.password(settings, "postgres"),
    }


#: Prefect's lease storage that survives a restart of the server (leases as files)
LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"


class PrefectServerService(Service):
    name = "prefect"
    port_key = "prefect"
    binaries = {"prefect": PREFECT_HINT}
    #: a limit, not a wait: start returns once healthy (~20 s quiet); a busy 2-core host (load
    #: above 10) took more than 90 s, so the limit leaves room before it calls the start failed
    start_timeout = 240.0

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        # Vault holds the API's auth string
        return ("vault", "postgres") if self.settings.database == "postgres" else ("vault",)

    def env(self) -> dict[str, str]:
        env = prefect_env(self.settings)
        env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        env.update(server_database_env(self.settings))
        # concurrency leases on disk (PREFECT_HOME/concurrency_leases), not in the server's
        # memory: a release's slot is held under a lease, and a lease lost with a killed or
        # restarted server could never be given back (decrement-with-lease ignores an unknown
        # lease) nor expire, so that service's next release waited for its slot forever
        env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] = LEASE_STORAGE
        return env

    def argv(self) -> list[str]:
        return [self.binary("prefect"), "server", "start",
                "--host", self.settings.host, "--port", str(self.port)]

    def healthy(self) -> bool:
        return http_ok(self.url + "/api/health")

    def after_start(self) -> None:
        resp = prefect_http.request(self.settings.prefect_api_url, "GET",
                                    f"/work_pools/{WORK_POOL}")
        if resp.status_code == 200:
            return
        result = subprocess.run(
            [self.binary("prefect"), "work-pool", "create", WORK_POOL, "--type", "process"],
            env=prefect_env(self.settings), capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"creating work pool {WORK_POOL!r} failed: "
                f"{result.stdout[-500:]}{result.stderr[-500:]}"
            )

    def detail(self) -> str:
        return f"UI {self.url} · db {self.settings.database}"

