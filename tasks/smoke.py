"""Smoke checks: real predictions against an address; every answer must be a 200."""

from __future__ import annotations

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE

from suite.errors import DeployError
from suite.load import default_rows


def smoke(url: str, requests: int, timeout: float = 10.0) -> str:
    rows = default_rows(max(requests, 1))
    failures: list[str] = []
    with httpx.Client(timeout=timeout) as client:
        for i in range(requests):
            try:
                resp = client.post(f"{url}/predict", json={"inputs": [rows[i % len(rows)]]})
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {resp.text[:120]}")
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
    if failures:
        raise DeployError(f"smoke check of {url}: {len(failures)}/{requests} predictions failed "
                          f"(first: {failures[0]})")
    return f"{requests}/{requests} predictions answered 200 at {url}"


@task(name="smoke-check", cache_policy=NO_CACHE)
def smoke_task(url: str, requests: int) -> str:
    return smoke(url, requests)
