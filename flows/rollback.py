"""Flow ``rollback``: put the previous version back — traffic on the target and, when asked, the
MLflow ``champion`` alias. Wiring only (tasks in :mod:`tasks.deploy`, :mod:`tasks.release` and
:mod:`tasks.reconcile`).

With ``flow_run_id`` (the ``suite-release-crashed-rollback`` automation passes the release run
that crashed or was cancelled) it reconciles that run's unfinished release instead: nothing
happens when the run's own hook already did it, or when another release is in progress.
"""

from __future__ import annotations

from prefect import flow

from suite import settings as settings_mod
from tasks.deploy import rollback_task
from tasks.reconcile import reconcile_task
from tasks.release import audit_task, check_override_task, rollback_model_task

#: how the automation names the run: the event's resource id
RUN_RESOURCE = "prefect.flow-run."


@flow(name="rollback", log_prints=True)
def rollback(
    service: str = "model-server",
    target: str = "local",
    model_name: str = "",
    reason: str = "manual rollback",
    approval_token: str = "",
    flow_run_id: str = "",
) -> dict[str, object]:
    """Roll back ``service`` on ``target``: an unfinished canary or preview is removed and all
    traffic goes to stable; after a blue-green switch the previous colour comes back.
    ``model_name``: also give its ``champion`` alias back to the previous version.
    ``flow_run_id``: only reconcile the unfinished release of this (crashed/cancelled) run.

    A manual rollback (no ``flow_run_id``) is an abort: it needs ``approval_token``, an
    approver's `suite approve-token` (Vault checks it), and its records name that approver —
    never a name typed into a parameter. Reconciling a dead run needs none: it only finishes
    what the run's own hooks would have done, as the worker's identity."""
    settings = settings_mod.load()
    if flow_run_id:
        run = flow_run_id.removeprefix(RUN_RESOURCE)
        done = reconcile_task(settings, service, reason, dead_run=run, check_process=True)
        if done is None:
            print(f"nothing to reconcile for {service}: run {run} left no unfinished release "
                  f"(its hook already rolled it back, it ended, or its process still runs)")
            return {"service": service, "reconciled": False, "flow_run_id": run}
        print(done.line())
        return {"service": service, "reconciled": True, "flow_run_id": run,
                "release": done.release, "outcome": done.outcome, "stable": done.stable}
    approver = check_override_task(
        settings, f"a manual rollback of {service}", approval_token,
        "an approver passes the output of `suite approve-token` as the run's approval_token")
    deployment = rollback_task(target, service, settings)
    result: dict[str, object] = {
        "service": service, "target": target,
        "stable": deployment.stable.version if deployment.stable else None,
    }
    if model_name:
        change = rollback_model_task(settings, model_name, reason, approver)
        result["champion"] = change
    audit_task(settings, "release.rollback", f"{service}@{target}",
               {"reason": reason, **result}, actor=approver)
    print(f"rolled back: {result}")
    return result
