"""Credentials of the platform's own services that have no identity provider of their own:
Prometheus' API and UI (its web config's basic auth), HAProxy's stats page, the registry's two
users (``builder`` pushes and pulls, ``puller`` only pulls) and Postgres' ``postgres`` role.

Each service gets one random password, made on its first start and kept in
``SUITE_HOME/secrets/<service>.password`` (mode 0600, in a 0700 directory): only the platform's
user reads it — the workers, the CLI and the tests, who run as that user. The user name is
:data:`USER`. A password is never logged: :func:`basic_auth` gives the header to send.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import bcrypt

from suite.errors import ConfigError
from suite.platform.files import atomic_write
from suite.settings import Settings

USER = "suite"
#: what needs a password here
SERVICES = ("prometheus", "haproxy", "registry-builder", "registry-puller", "postgres")
#: the user name of each credential whose user is not :data:`USER`
USERS = {"registry-builder": "builder", "registry-puller": "puller", "postgres": "postgres"}
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
