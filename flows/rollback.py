"""Flow ``rollback``: put the previous version back — traffic on the target and, when asked, the
MLflow ``champion`` alias. Wiring only (tasks in :mod:`tasks.deploy` and :mod:`tasks.release`)."""

from __future__ import annotations

from prefect import flow

from suite import settings as settings_mod
from tasks.deploy import rollback_task
from tasks.release import audit_task, rollback_model_task


@flow(name="rollback", log_prints=True)
def rollback(
    service: str = "model-server",
    target: str = "local",
    model_name: str = "",
    reason: str = "manual rollback",
    approver: str = "",
) -> dict[str, object]:
    """Roll back ``service`` on ``target``: an unfinished canary or preview is removed and all
    traffic goes to stable; after a blue-green switch the previous colour comes back.
    ``model_name``: also give its ``champion`` alias back to the previous version."""
    settings = settings_mod.load()
    deployment = rollback_task(target, service, settings)
    result: dict[str, object] = {
        "service": service, "target": target,
        "stable": deployment.stable.version if deployment.stable else None,
    }
    if model_name:
        change = rollback_model_task(settings, model_name, reason, approver or "rollback-flow")
        result["champion"] = change
    audit_task(settings, "release.rollback", f"{service}@{target}",
               {"reason": reason, **result}, actor=approver or "rollback-flow")
    print(f"rolled back: {result}")
    return result
