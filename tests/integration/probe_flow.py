"""A tiny flow deployed by the webhook tests: proves a push reached a worker with its service and
sha (the parameters the release flow takes from a push)."""

from __future__ import annotations

from prefect import flow


@flow(name="webhook-probe")
def probe(service: str, git_sha: str, triggered_by: str = "") -> str:
    return f"{service}@{git_sha}"
