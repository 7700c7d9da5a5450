"""Raw calls to the Prefect REST API that ride out a busy SQLite database, with the platform's
credential.

Prefect on SQLite answers 503 ("database is locked") when the workers, the scheduler and the
triggers write at once; Prefect's own client retries those, and so does this. Used where the
suite talks to the API without Prefect's client (health checks, artifact lookups, tests).

Prefect's server asks every API call for basic auth with its auth string
(:mod:`suite.platform.api_auth`). :func:`request` sends it for the API it calls: the one given
to :func:`use_auth` for that URL (``suite up`` does it for its platform), else
``PREFECT_API_AUTH_STRING`` (workers, the flow runs they start, the webhook receiver), else the
string read from Vault for the platform of ``SUITE_HOME`` when ``api`` is its API (the CLI).
:func:`client_settings` gives Prefect's own client the same. Never logged, never in an error.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

#: answers worth retrying: rate limited, or the database was locked
RETRY_STATUS = frozenset({429, 503})
DELAYS = (0.5, 1.0, 2.0, 3.0)

_auth: dict[str, str] = {}
_auth_lock = threading.Lock()


def _key(api: str) -> str:
    return api.rstrip("/")


def use_auth(api: str, auth_string: str) -> None:
    """Send ``auth_string`` (``user:password``) with every call to ``api`` from this process."""
    with _auth_lock:
        _auth[_key(api)] = auth_string


def _resolve(api: str) -> str | None:
    from suite import settings as settings_mod
    from suite.errors import SuiteError

    given = settings_mod.prefect_auth_string()
    if given:
        return given
    settings = settings_mod.load()
    if _key(settings.prefect_api_url) != _key(api):
        return None
    from suite.platform.api_auth import prefect_auth

    try:
        return prefect_auth(settings).get_secret_value()
    except SuiteError:
        return None  # the call goes out without it and Prefect answers 401: the caller decides


def auth_string(api: str) -> str | None:
    """The auth string this process sends to ``api`` (None: none known)."""
    with _auth_lock:
        known = _auth.get(_key(api))
    if known is not None:
        return known
    found = _resolve(api)
    if found is not None:
        use_auth(api, found)
    return found


def headers(api: str) -> dict[str, str]:
    """The ``Authorization`` header for ``api`` (empty when no auth string is known)."""
    auth = auth_string(api)
    if auth is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@contextmanager
def client_settings(api: str) -> Iterator[None]:
    """Prefect's own client (``run_deployment``, ``get_client``, flows run in this process) on
    ``api`` with its auth string, as per-context settings, never ambient state."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: api}
    auth = auth_string(api)
    if auth is not None:
        updates[PREFECT_API_AUTH_STRING] = auth
    with temporary_settings(updates=updates):
        yield


def request(api: str, method: str, path: str, *, json: Any = None,
            params: dict[str, str] | None = None, timeout: float = 10.0,
            delays: Sequence[float] | None = None,
            client: httpx.Client | None = None) -> httpx.Response:
    """The answer to ``method api+path``, after retries of 429/503 (``delays``, default ~6.5 s
    in all; pass shorter ones where someone waits for the answer, e.g. a forge's webhook).

    Other answers, and the last 429/503, are returned as they are: the caller decides.
    Connection errors propagate (``httpx.HTTPError``).
    """
    auth = headers(api)
    for delay in (*(DELAYS if delays is None else delays), None):
        if client is not None:
            resp = client.request(method, f"{api}{path}", json=json, params=params,
                                  headers=auth)
        else:
            resp = httpx.request(method, f"{api}{path}", json=json, params=params,
                                 timeout=timeout, headers=auth)
        if resp.status_code not in RETRY_STATUS or delay is None:
            return resp
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
