"""A tiny flow deployed by the webhook tests: proves a push reached a worker with its sha."""

from __future__ import annotations

from prefect import flow


@flow(name="webhook-probe")
def probe(git_sha: str, triggered_by: str = "", repository: str = "") -> str:
    return git_sha
