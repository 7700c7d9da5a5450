"""Raw calls to the Prefect REST API that ride out a busy SQLite database.

Prefect on SQLite answers 503 ("database is locked") when the workers, the scheduler and the
triggers write at once; Prefect's own client retries those, and so does this. Used where the
suite talks to the API without Prefect's client (health checks, artifact lookups, tests).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

#: answers worth retrying: rate limited, or the database was locked
RETRY_STATUS = frozenset({429, 503})
DELAYS = (0.5, 1.0, 2.0, 3.0)


def request(api: str, method: str, path: str, *, json: Any = None,
            params: dict[str, str] | None = None, timeout: float = 10.0,
            delays: Sequence[float] | None = None,
            client: httpx.Client | None = None) -> httpx.Response:
    """The answer to ``method api+path``, after retries of 429/503 (``delays``, default ~6.5 s
    in all; pass shorter ones where someone waits for the answer, e.g. a forge's webhook).

    Other answers, and the last 429/503, are returned as they are: the caller decides.
    Connection errors propagate (``httpx.HTTPError``).
    """
    for delay in (*(DELAYS if delays is None else delays), None):
        if client is not None:
            resp = client.request(method, f"{api}{path}", json=json, params=params)
        else:
            resp = httpx.request(method, f"{api}{path}", json=json, params=params,
                                 timeout=timeout)
        if resp.status_code not in RETRY_STATUS or delay is None:
            return resp
        time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
