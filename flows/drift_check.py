"""Flow ``drift-check``: does the cloud still match the stack, and the stack the program?

Refresh in preview mode (cloud vs state) and a preview (program vs state); any pending change is
drift, reported as a Prefect artifact and an audit event. Scheduled nightly in prefect.yaml.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from suite import settings as settings_mod
from tasks.provision import DriftReport, StackRequest, drift_check_task, report_drift_task


@flow(name="drift-check", log_prints=True)
def drift_check(
    target: Literal["kubernetes", "aws", "azure", "gcp"] = "kubernetes",
    stack: str = "dev-k8s",
    backend_url: str | None = None,
) -> DriftReport:
    settings = settings_mod.load()
    request = StackRequest(target=target, stack=stack, backend_url=backend_url)
    report = drift_check_task(settings, request)
    report_drift_task(settings, report)
    return report
