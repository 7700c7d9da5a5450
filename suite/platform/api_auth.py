"""Credentials of the platform's APIs that are kept in Vault: Prefect's auth string.

Prefect's server checks one ``user:password`` (``PREFECT_SERVER_API_AUTH_STRING``) on every API
call but ``GET /api/health`` and ``/api/ready``; every client sends it as basic auth (Prefect's
own client from ``PREFECT_API_AUTH_STRING``, the suite's raw calls through
:mod:`suite.prefect_http`). The string lives in Vault KV v2 at ``secret/suite/platform/prefect``
(key ``auth_string``), made by :func:`ensure_prefect_auth` right after Vault's bootstrap on
``suite up``, before the Prefect server starts (it needs Vault, which unseals itself on start,
so no copy is kept on disk). It is read back by :func:`prefect_auth` with the best token the
caller has (the operator's admin token; a worker's AppRole), never logged, never in an error.
"""

from __future__ import annotations

import secrets

import hvac
from pydantic import SecretStr

from suite import vault
from suite.errors import ConfigError, SuiteError, VaultError
from suite.settings import Settings

#: KV path (under ``secret/suite/``) and key of Prefect's auth string
PREFECT_PATH = "platform/prefect"
PREFECT_KEY = "auth_string"
#: the user name half of the auth string (the UI asks for the whole ``user:password``)
PREFECT_USER = "suite"


def ensure_prefect_auth(settings: Settings, client: hvac.Client | None = None) -> None:
    """Make Prefect's auth string on the platform's first start (idempotent): ``suite:`` and 32
    random url-safe bytes, written to Vault with the admin token."""
    client = client or vault.client(settings)
    try:
        vault.get_secret(client, PREFECT_PATH, PREFECT_KEY)
        return
    except ConfigError:  # not there yet
        pass
    vault.put_secret(client, PREFECT_PATH, PREFECT_KEY,
                     f"{PREFECT_USER}:{secrets.token_urlsafe(32)}")


def prefect_auth(settings: Settings, client: hvac.Client | None = None) -> SecretStr:
    """Prefect's ``user:password``, read from Vault with ``client`` — by default the caller's
    everyday client (:func:`suite.vault.client`: a worker's AppRole, else the admin token).

    Raises :class:`~suite.errors.VaultError` (or ``ServiceUnavailable`` without a token) naming
    the KV path and what to do; never the value."""
    try:
        client = client or vault.client(settings)
        value = vault.get_secret(client, PREFECT_PATH, PREFECT_KEY)
    except SuiteError as exc:
        raise VaultError(
            f"cannot read Prefect's auth string from Vault ({vault.KV_MOUNT}/{vault.KV_PREFIX}/"
            f"{PREFECT_PATH}, key {PREFECT_KEY!r}): {exc}; is the platform up (`suite up`)?"
        ) from exc
    if ":" not in value:
        raise VaultError(f"Prefect's auth string in Vault ({vault.KV_MOUNT}/{vault.KV_PREFIX}/"
                         f"{PREFECT_PATH}) is not 'user:password'; set one with `suite secrets put "
                         f"{PREFECT_PATH} {PREFECT_KEY}`, then `suite down && suite up`")
    return SecretStr(value)
