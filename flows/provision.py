"""Flow ``provision``: run one Pulumi action on one stack (wiring only).

``up`` previews with the CrossGuard pack before applying; ``destroy`` needs ``confirm_destroy``
set to the stack name. Without the Pulumi CLI on the worker a Pulumi target fails at once with
the install hint; the ``local`` target needs no CLI.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from suite import settings as settings_mod
from tasks.provision import POLICY_PACK, Action, StackOutputs, StackRequest, provision_task


@flow(name="provision", log_prints=True)
def provision(
    target: Literal["kubernetes", "aws", "azure", "gcp", "local"] = "kubernetes",
    stack: str = "dev-k8s",
    action: Action = Action.UP,
    config: dict[str, str] | None = None,
    confirm_destroy: str | None = None,
    backend_url: str | None = None,
    policy_pack: bool = True,
) -> StackOutputs:
    settings = settings_mod.load()
    request = StackRequest(target=target, stack=stack, config=config or {},
                           backend_url=backend_url,
                           policy_pack=POLICY_PACK if policy_pack else None)
    return provision_task(settings, request, action, confirm_destroy)
