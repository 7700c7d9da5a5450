"""Credentials of the platform's own services that have no identity provider of their own:
Prometheus' API and UI (its web config's basic auth), HAProxy's stats page, the registry's two
users (``builder`` pushes and pulls, ``puller`` only pulls), Postgres' ``postgres`` role and
MLflow's basic-auth app (its ``admin``, the platform's user ``suite`` that the workers, the CLI
and the tests log in as, and the Flask secret key that signs its CSRF tokens).

Each service gets one random password, made by ``suite up`` (:func:`prepare`) and by the
service that checks it (:func:`ensure_password`) on the first start, and kept in
``SUITE_HOME/secrets/<service>.password`` (mode 0600, in a 0700 directory): only the platform's
user reads it — the workers, the CLI and the tests, who run as that user. A client only reads
it (:func:`password`): a missing file is a ConfigError saying to run ``suite up``, never a new
password the server does not know. The user name is :data:`USER`.
A password is never logged: :func:`basic_auth` gives the header to send.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import bcrypt

from suite.errors import ConfigError
from suite.platform.files import atomic_write
from suite.settings import Settings

USER = "suite"
#: what needs a password here
SERVICES = ("prometheus", "haproxy", "registry-builder", "registry-puller", "postgres",
            "mlflow-admin", "mlflow-suite", "mlflow-flask-key")
#: the user name of each credential whose user is not :data:`USER`
USERS = {"registry-builder": "builder", "registry-puller": "puller", "postgres": "postgres",
         "mlflow-admin": "admin"}
#: the registry's users: who may push (``builder``) and who may only pull
REGISTRY_ROLES = ("builder", "puller")


def path(settings: Settings, service: str) -> Path:
    if service not in SERVICES:
        raise ConfigError(f"no platform credential for {service!r} (known: {', '.join(SERVICES)})")
    return settings.dir("secrets", f"{service}.password")


def _read(where: Path) -> str:
    try:
        return where.read_text().strip()
    except FileNotFoundError:
        return ""


def password(settings: Settings, service: str) -> str:
    """The password a client sends to ``service``; made only by the service that owns it."""
    where = path(settings, service)
    text = _read(where)
    if not text:
        raise ConfigError(f"no {service} password at {where} (the platform writes it when it "
                          f"first starts the service that checks it): run `suite up`")
    return text


def ensure_password(settings: Settings, service: str) -> str:
    """The owner's side (`suite up`, and the service that checks the password as it prepares
    its start): the password, made and saved (0600) the first time. Two makers at once agree:
    the file appears whole and only once (a hard link that fails when it exists), and the
    loser reads the winner's."""
    where = path(settings, service)
    text = _read(where)
    if text:
        return text
    where.parent.mkdir(parents=True, exist_ok=True)
    where.parent.chmod(0o700)
    fresh = secrets.token_urlsafe(24)
    if where.exists():
        text = _read(where)  # another maker may have linked it in since the first read
        if text:
            return text
        # an empty file (an interrupted earlier version): replace it
        atomic_write(where, fresh + "\n", mode=0o600)
        return fresh
    tmp = where.with_name(f".{where.name}.{secrets.token_hex(6)}")
    atomic_write(tmp, fresh + "\n", mode=0o600)
    try:
        os.link(tmp, where)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return password(settings, service)


def prepare(settings: Settings) -> None:
    """Every platform password, made by `suite up` before any service starts: the services
    start side by side, and a client (the engine's registry login, the workers' MLflow login)
    may prepare before the service that checks its password."""
    for service in SERVICES:
        ensure_password(settings, service)


def user(service: str) -> str:
    """The user name that goes with ``service``'s password."""
    return USERS.get(service, USER)


def basic_auth(settings: Settings, service: str) -> dict[str, str]:
    """The ``Authorization`` header for ``service``."""
    token = base64.b64encode(f"{user(service)}:{password(settings, service)}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def registry_login(settings: Settings, role: str) -> tuple[str, str]:
    """(user, password) of the registry's ``builder`` (push and pull) or ``puller`` (pull)."""
    if role not in REGISTRY_ROLES:
        raise ConfigError(f"registry role {role!r} is not one of {', '.join(REGISTRY_ROLES)}")
    return role, password(settings, f"registry-{role}")


def docker_auth(settings: Settings, role: str) -> dict[str, str]:
    """The registry login as the Docker SDK's ``auth_config``."""
    name, secret = registry_login(settings, role)
    return {"username": name, "password": secret}


def bcrypt_hash(secret: str, rounds: int = 10) -> str:
    """A bcrypt hash of ``secret`` (what Prometheus' ``basic_auth_users`` holds).

    The registry's gate checks its hashes on every request (a push makes dozens), so it asks
    for few rounds: its passwords are 24 random bytes, which no number of rounds makes easier
    or harder to guess."""
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def mlflow_login(settings: Settings) -> tuple[str, str]:
    """(user, password) of MLflow's platform user: it registers versions (so it holds MANAGE
    on the models it creates) and moves their aliases. Not an MLflow admin."""
    return user("mlflow-suite"), password(settings, "mlflow-suite")


def mlflow_admin(settings: Settings) -> tuple[str, str]:
    """(user, password) of MLflow's admin: creates users and grants, nothing else uses it."""
    return user("mlflow-admin"), password(settings, "mlflow-admin")


def mlflow_env(settings: Settings) -> dict[str, str]:
    """What an MLflow client process needs to act as the platform user. The names are in
    ``settings.NEVER_PASSED``: ``child_env`` never copies them, so each process that talks
    to MLflow gets them here, explicitly."""
    name, secret = mlflow_login(settings)
    return {"MLFLOW_TRACKING_URI": settings.mlflow_uri,
            "MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": secret}


_mlflow_logged_in: set[str] = set()


def use_mlflow(settings: Settings) -> None:
    """Log this process's MLflow clients in as the platform user. MLflow's client reads its
    basic-auth credential from the process environment on every request and has no other
    setting for it, so this is the one place that writes those names into ``os.environ``."""
    env = mlflow_env(settings)
    del env["MLFLOW_TRACKING_URI"]
    os.environ.update(env)
    _mlflow_logged_in.add(settings.mlflow_uri)


def ensure_mlflow_login(tracking_uri: str) -> None:
    """Log in (:func:`use_mlflow`) when ``tracking_uri`` is this platform's MLflow and this
    process has not done so yet: the CLI and flows reach MLflow through one tracking URI."""
    uri = tracking_uri.rstrip("/")
    if uri in _mlflow_logged_in or not uri.startswith(("http://", "https://")):
        return
    if os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        _mlflow_logged_in.add(uri)  # logged in explicitly (mlflow_env): that login stands
        return
    from suite import settings as settings_mod

    settings = settings_mod.load()
    if settings.mlflow_uri == uri:
        use_mlflow(settings)
