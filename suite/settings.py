"""Settings: the only module that reads the process environment.

Every other module receives a :class:`Settings` (or values taken from it) as an argument, so a
test can run a whole platform under its own home directory and ports without touching a user's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from suite.errors import ConfigError

DEFAULT_PORTS: dict[str, int] = {
    "vault": 8200,
    "prefect": 4200,
    "mlflow": 5001,
    "prometheus": 9090,
    "registry": 5000,
    "postgres": 55432,
    "haproxy": 8080,  # release traffic (stable + canary)
    "haproxy_preview": 8081,  # blue-green preview
    "haproxy_metrics": 8404,  # Prometheus exporter and stats page
    "webhook": 9300,  # git push receiver
}

DATABASES = ("sqlite", "postgres")
#: requests per second one source address may send to the release address, averaged over 10 s
#: (HAProxy answers 429 beyond it); 10x the heaviest load the demo and the tests send. 0: no limit
DEFAULT_RATE_LIMIT = 1000
#: the checkout this package runs from (installed editable by `make install`)
PROJECT_DIR = Path(__file__).resolve().parents[1]
#: where the debootstrap rootfs of the base image is kept across homes and test runs
DEFAULT_IMAGE_CACHE = Path("/var/cache/ultimate-suite")

#: what a platform child (service, worker, flow run) inherits from the operator's environment,
#: by exact name: the locale, time zone and terminal, the user's home and search path, and the
#: proxy and CA-bundle settings the machine's egress needs. Nothing else (no VAULT_TOKEN, no
#: AWS_*, no cloud keys): a child gets what it needs explicitly, and ``SUITE_PASS_ENV`` names more
CHILD_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
    "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
    "GIT_SSL_CAINFO", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK",
})
#: ...and by prefix: the locale categories and the platform's own coordinates
CHILD_ENV_PREFIXES = ("LC_", "SUITE_")
#: platform API credentials, set explicitly for the processes that need them (the Prefect
#: server, its workers and their flow runs): never passed on, not even by ``SUITE_PASS_ENV``
NEVER_PASSED = frozenset({"PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING",
                          "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not an integer (expected e.g. {default})") from exc
    return value


def _path_env(env: Mapping[str, str], key: str) -> Path | None:
    raw = env.get(key)
    return Path(raw) if raw else None


def check_port(name: str, port: int) -> int:
    if not 1 <= port <= 65535:
        raise ConfigError(f"port for {name} is {port} (expected 1..65535)")
    return port


@dataclass(frozen=True)
class Settings:
    """Where the local platform keeps its state and which ports it binds (always 127.0.0.1)."""

    home: Path
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    workers: int = 2
    database: str = "sqlite"
    host: str = "127.0.0.1"
    worker_query_seconds: int = 2
    start_timeout: float = 90.0
    #: set in worker processes: log in to Vault with AppRole instead of the admin token
    vault_role_id_file: Path | None = None
    vault_secret_id_file: Path | None = None
    #: a Docker engine to use instead of the platform's podman service (``DOCKER_HOST``)
    docker_host: str | None = None
    #: Pulumi state backend (default: file://<home>/pulumi)
    pulumi_backend_url: str | None = None
    #: cache of slow image inputs (the base rootfs tar), shared by every home
    image_cache: Path = DEFAULT_IMAGE_CACHE
    #: Trivy cache (vulnerability DB); None = ``<home>/trivy``
    trivy_cache_dir: Path | None = None
    #: per-source request rate limit of HAProxy's release frontend (requests/s; 0 = off)
    rate_limit: int = DEFAULT_RATE_LIMIT
    #: names of operator variables passed to platform children beyond :data:`CHILD_ENV_NAMES`
    #: (``SUITE_PASS_ENV=NAME,NAME``): the one way to hand a child more than the allow-list
    pass_env: tuple[str, ...] = ()
    #: a person's cached Vault login (`suite login`; ``SUITE_TOKEN_FILE``, default
    #: ``$XDG_CONFIG_HOME/suite/token`` or ``~/.config/suite/token``); None: no login cache
    token_file: Path | None = None

    def __post_init__(self) -> None:
        for name, port in self.ports.items():
            check_port(name, port)
        if self.database not in DATABASES:
            raise ConfigError(
                f"database {self.database!r} is not supported (expected one of {DATABASES})"
            )
        if self.workers < 0:
            raise ConfigError(f"workers is {self.workers} (expected 0 or more)")
        for name in self.pass_env:
            if not _ENV_NAME.fullmatch(name):
                raise ConfigError(
                    f"SUITE_PASS_ENV names {name!r}, which is not an environment variable name "
                    f"(expected comma-separated names such as 'MY_PROXY,MY_FLAG')")
            if name in NEVER_PASSED:
                raise ConfigError(
                    f"SUITE_PASS_ENV names {name!r}, a platform credential the platform hands "
                    f"only to the processes that need it; remove it from SUITE_PASS_ENV")
        if self.rate_limit < 0:
            raise ConfigError(f"rate limit is {self.rate_limit} requests/s per source address "
                              f"(expected 0 for none, or more; default {DEFAULT_RATE_LIMIT})")

    def port(self, name: str) -> int:
        try:
            return self.ports[name]
        except KeyError as exc:
            raise ConfigError(f"no port configured for service {name!r}") from exc

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port(name)}"

    def dir(self, *parts: str) -> Path:
        return self.home.joinpath(*parts)

    @property
    def vault_addr(self) -> str:
        return self.url("vault")

    @property
    def prefect_api_url(self) -> str:
        return self.url("prefect") + "/api"

    @property
    def mlflow_uri(self) -> str:
        return self.url("mlflow")

    def with_overrides(
        self,
        *,
        ports: Mapping[str, int] | None = None,
        workers: int | None = None,
        database: str | None = None,
        rate_limit: int | None = None,
    ) -> Settings:
        merged = dict(self.ports)
        merged.update(ports or {})
        return replace(
            self,
            ports=merged,
            workers=self.workers if workers is None else workers,
            database=self.database if database is None else database,
            rate_limit=self.rate_limit if rate_limit is None else rate_limit,
        )


def _saved(home: Path) -> dict[str, Any]:
    """What the last `suite up` used (``platform.json``), so later commands find the same ports."""
    try:
        data = json.loads((home / "platform.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment over the saved platform config over the defaults.

    ``SUITE_HOME`` (default ``./.suite``), ``SUITE_<SERVICE>_PORT``, ``SUITE_WORKERS``,
    ``SUITE_DATABASE``, ``SUITE_WORKER_QUERY_SECONDS``, ``DOCKER_HOST``, ``SUITE_IMAGE_CACHE``,
    ``SUITE_TRIVY_CACHE_DIR``, ``SUITE_RATE_LIMIT``, ``SUITE_PASS_ENV``, ``SUITE_TOKEN_FILE``.
    """
    env = os.environ if env is None else env
    home = Path(env.get("SUITE_HOME") or Path.cwd() / ".suite").expanduser().resolve()
    saved = _saved(home)
    saved_ports = {k: int(v) for k, v in dict(saved.get("ports") or {}).items()}
    ports = {
        name: _int_env(env, f"SUITE_{name.upper()}_PORT", saved_ports.get(name, default))
        for name, default in DEFAULT_PORTS.items()
    }
    return Settings(
        home=home,
        ports=ports,
        workers=_int_env(env, "SUITE_WORKERS", int(saved.get("workers", 2))),
        database=env.get("SUITE_DATABASE") or str(saved.get("database", "sqlite")),
        worker_query_seconds=_int_env(env, "SUITE_WORKER_QUERY_SECONDS", 2),
        vault_role_id_file=_path_env(env, "SUITE_VAULT_ROLE_ID_FILE"),
        vault_secret_id_file=_path_env(env, "SUITE_VAULT_SECRET_ID_FILE"),
        docker_host=env.get("DOCKER_HOST") or None,
        pulumi_backend_url=env.get("PULUMI_BACKEND_URL") or None,
        image_cache=_path_env(env, "SUITE_IMAGE_CACHE") or DEFAULT_IMAGE_CACHE,
        trivy_cache_dir=_path_env(env, "SUITE_TRIVY_CACHE_DIR"),
        rate_limit=_int_env(env, "SUITE_RATE_LIMIT",
                            int(saved.get("rate_limit", DEFAULT_RATE_LIMIT))),
        pass_env=tuple(n.strip() for n in (env.get("SUITE_PASS_ENV") or "").split(",")
                       if n.strip()),
        token_file=_path_env(env, "SUITE_TOKEN_FILE") or _default_token_file(env),
    )


def _default_token_file(env: Mapping[str, str]) -> Path | None:
    config = env.get("XDG_CONFIG_HOME") or (f"{env['HOME']}/.config" if env.get("HOME") else "")
    return Path(config).expanduser() / "suite" / "token" if config else None


def prefect_auth_string(env: Mapping[str, str] | None = None) -> str | None:
    """``PREFECT_API_AUTH_STRING``, which the platform sets for its workers, the flow runs they
    start and the webhook receiver (never passed on by :func:`child_env`): a secret, kept out
    of :class:`Settings` so that no repr or log of the settings can show it."""
    source = os.environ if env is None else env
    return source.get("PREFECT_API_AUTH_STRING") or None


def child_env(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for platform child processes (services, workers and the flow runs they start):
    an allow-list of the caller's (:data:`CHILD_ENV_NAMES`, :data:`CHILD_ENV_PREFIXES`, the
    names in ``settings.pass_env``), never a copy of it, plus the platform's coordinates."""
    source = os.environ if env is None else env
    wanted = CHILD_ENV_NAMES | set(settings.pass_env)
    base = {k: v for k, v in source.items()
            if k in wanted or k.startswith(CHILD_ENV_PREFIXES)}
    base["SUITE_HOME"] = str(settings.home)
    for name, port in settings.ports.items():
        base[f"SUITE_{name.upper()}_PORT"] = str(port)
    base["SUITE_DATABASE"] = settings.database
    base["SUITE_RATE_LIMIT"] = str(settings.rate_limit)
    if settings.docker_host:
        base["DOCKER_HOST"] = settings.docker_host
    if settings.pulumi_backend_url:
        base["PULUMI_BACKEND_URL"] = settings.pulumi_backend_url
    # where deployments find the flows (prefect.yaml's pull step sets the working directory)
    base.setdefault("SUITE_PROJECT_DIR", str(PROJECT_DIR))
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base
