"""Release helpers the ``release`` flow wires together: stage timing, the audit trail, the model
champion, the environment check of the local target, and the human approval on MARGINAL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput

from suite import audit
from suite.errors import ServiceUnavailable
from suite.platform import manager
from suite.settings import Settings
from tasks.report import ReleaseRecord, StageRecord

T = TypeVar("T")
LOCAL_NEEDS = ("engine", "haproxy", "prometheus", "registry", "mlflow", "vault")


@contextmanager
def stage(rec: ReleaseRecord, name: str, detail: Callable[[], str] | None = None) -> Iterator[None]:
    """Time a stage and record its outcome (``failed: <error>`` when it raises)."""
    began = time.monotonic()
    try:
        yield
    except BaseException as exc:
        rec.stages.append(StageRecord(name, time.monotonic() - began, "failed",
                                      f"{type(exc).__name__}: {exc}"[:300]))
        raise
    rec.stages.append(StageRecord(name, time.monotonic() - began, "ok",
                                  detail() if detail else ""))


@task(name="audit", cache_policy=NO_CACHE)
def audit_task(settings: Settings, action: str, subject: str, inputs: dict[str, Any],
               outcome: str = "ok", actor: str = "release-flow") -> int:
    return audit.append(settings, actor=actor, action=action, subject=subject, inputs=inputs,
                        outcome=outcome).seq


@task(name="provision-local", cache_policy=NO_CACHE)
def provision_local_task(settings: Settings) -> str:
    """The local target's environment is the platform: its services must be healthy."""
    states = {s.name: s for s in manager.status(settings)}
    bad = [f"{n} is {states[n].state}" if n in states else f"{n} is not configured"
           for n in LOCAL_NEEDS if n not in states or not states[n].healthy]
    if bad:
        raise ServiceUnavailable(f"local target not ready: {', '.join(bad)}; run `suite up`")
    return ", ".join(f"{n} ok" for n in LOCAL_NEEDS)


def current_champion(settings: Settings, name: str) -> str | None:
    from models.registry.store import client, version_by_alias

    found = version_by_alias(client(settings.mlflow_uri), name, "champion")
    return str(found.version) if found is not None else None


@task(name="promote-model", cache_policy=NO_CACHE)
def promote_model_task(settings: Settings, name: str, version: str, reason: str,
                       actor: str = "release-flow") -> str | None:
    """``champion`` := ``version`` (no-op when it already is); returns the previous champion."""
    from models.registry import champion

    before = current_champion(settings, name)
    if before == version:
        return before
    champion.promote(settings, name, version, actor=actor, reason=reason)
    return before


@task(name="rollback-model", cache_policy=NO_CACHE)
def rollback_model_task(settings: Settings, name: str, reason: str, actor: str) -> str:
    """``champion`` goes back to the version it replaced; returns "vA -> vB"."""
    from models.registry import champion

    change = champion.rollback(settings, name, actor=actor, reason=reason)
    return f"v{change.from_version} -> v{change.to_version}"


class Approval(RunInput):
    """What a human answers when a canary step is MARGINAL (form in the Prefect UI)."""

    decision: Literal["approve", "rollback"]
    approver: str
    reason: str


def ask_approval(rec: ReleaseRecord, step: int, timeout_s: int) -> Approval | None:
    """Pause the run until a human answers; ``None`` when the wait timed out."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    try:
        answer = pause_flow_run(wait_for_input=Approval, timeout=timeout_s,
                                key=f"approval-{rec.release}-{step}")
    except FlowPauseTimeout:
        return None
    return answer
