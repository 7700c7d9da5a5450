"""Credentials of the platform's own HTTP services that have no identity provider of their own:
Prometheus' API and UI (its web config's basic auth) and HAProxy's stats page.

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
SERVICES = ("prometheus", "haproxy")


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


def basic_auth(settings: Settings, service: str) -> dict[str, str]:
    """The ``Authorization`` header for ``service``."""
    token = base64.b64encode(f"{USER}:{password(settings, service)}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bcrypt_hash(secret: str) -> str:
    """A bcrypt hash of ``secret`` (what Prometheus' ``basic_auth_users`` holds)."""
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=10)).decode()
