"""Smoke checks: GETs of the service's readiness path through the router, by its Host header;
every answer must be a 2xx."""

from __future__ import annotations

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE

from suite.errors import DeployError


def smoke(url: str, requests: int, *, host: str = "", path: str = "/healthz",
          timeout: float = 10.0) -> str:
    failures: list[str] = []
    headers = {"Host": host} if host else {}
    with httpx.Client(timeout=timeout) as client:
        for _ in range(requests):
            try:
                resp = client.get(f"{url}{path}", headers=headers)
                if not 200 <= resp.status_code < 300:
                    failures.append(f"{resp.status_code} {resp.text[:120]}")
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
    where = f"{url}{path} (Host: {host or 'as in the URL'})"
    if failures:
        raise DeployError(f"smoke check of {where}: {len(failures)}/{requests} requests failed "
                          f"(first: {failures[0]})")
    return f"{requests}/{requests} answered 2xx at {where}"


@task(name="smoke-check", cache_policy=NO_CACHE)
def smoke_task(url: str, requests: int, host: str = "", path: str = "/healthz") -> str:
    return smoke(url, requests, host=host, path=path)
