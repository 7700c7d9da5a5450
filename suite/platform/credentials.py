"""Credentials of the platform's own services that have no identity provider of their own:
Prometheus' API and UI (its web config's basic auth), HAProxy's stats page, the registry's two
users (``builder`` pushes and pulls, ``puller`` only pulls), Postgres' ``postgres`` role and
MLflow's basic-auth app (its ``admin``, the platform's user ``suite`` that the workers, the CLI
and the tests log in as, and the Flask secret key that signs its CSRF tokens).

Each service gets one random password, made on its first start and kept in
``SUITE_HOME/secrets/<service>.password`` (mode 0600, in a 0700 directory): only the platform's
user reads it — the workers, the CLI and the tests, who run as that user. The user name is
:data:`USER`. A password is never logged: :func:`basic_auth` gives the header to send.
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


def password(settings: Settings, service: str) -> str:
    """The service's password, made (and saved, 0600) on first use."""
    where = path(settings, service)
    try:
        text = where.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    where.parent.mkdir(parents=True, exist_ok=True)
    where.parent.chmod(0o700)
    text = secrets.token_urlsafe(24)
    atomic_write(where, text + "\n", mode=0o600)
    return text


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
    from suite import settings as settings_mod

    settings = settings_mod.load()
    if settings.mlflow_uri == uri:
        use_mlflow(settings)
