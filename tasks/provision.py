"""Provision stage: drive the Pulumi project at the repo root with the Automation API.

``up`` is preview (with the CrossGuard pack) → up (with the pack again, so nothing unchecked is
applied); ``refresh`` adopts the cloud's state; ``destroy`` runs only when ``confirm_destroy``
repeats the stack name; the drift check runs a refresh in preview mode and a preview, and any
pending change is drift. Engine output streams line by line to the caller (the Prefect logger
in the tasks). The ``local`` target is provisioned by ``suite up``: nothing to do here, and no
Pulumi CLI needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from stacks.config import Cloud
from suite.errors import ConfigError
from suite.settings import Settings
from tasks import pulumi_workspace as ws

PROJECT_DIR = Path(__file__).resolve().parents[1]
POLICY_PACK = PROJECT_DIR / "policies" / "crossguard"
LOCAL_TARGET = "local"
TARGETS = (LOCAL_TARGET, *(cloud.value for cloud in Cloud))
Log = Callable[[str], None]


class Action(StrEnum):
    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"
    DESTROY = "destroy"


@dataclass(frozen=True)
class StackRequest:
    """Which stack to act on and how; ``config`` is set on the stack first (e.g. weights)."""

    target: str
    stack: str
    config: Mapping[str, str] = field(default_factory=dict)
    project_dir: Path = PROJECT_DIR
    policy_pack: Path | None = POLICY_PACK
    policy_pack_config: Path | None = None
    backend_url: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r} (known: {', '.join(TARGETS)})")
        if self.target != LOCAL_TARGET:
            ws.check_stack_name(self.stack)
        for key in self.config:
            if ":" not in key:
                raise ConfigError(f"stack config key {key!r} has no namespace "
                                  f"(expected e.g. 'suite:canaryWeight')")

    @property
    def uses_pulumi(self) -> bool:
        return self.target != LOCAL_TARGET


@dataclass(frozen=True)
class StackOutputs:
    """What a Pulumi action left behind: outputs (secrets masked) and the change counts."""

    target: str
    stack: str
    action: Action
    outputs: Mapping[str, Any] = field(default_factory=dict)
    changes: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    def markdown(self) -> str:
        lines = [f"# Pulumi {self.action.value}: `{self.stack}` ({self.target})", ""]
        if self.note:
            lines += [self.note, ""]
        lines += ["| change | resources |", "|---|---|"]
        lines += [f"| {op} | {n} |" for op, n in sorted(self.changes.items())] or ["| none | 0 |"]
        lines += ["", "| output | value |", "|---|---|"]
        lines += [f"| {k} | `{v}` |" for k, v in sorted(self.outputs.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class DriftReport:
    stack: str
    refresh_changes: Mapping[str, int]
    program_changes: Mapping[str, int]

    @property
    def drifted(self) -> bool:
        return bool(pending(self.refresh_changes) or pending(self.program_changes))

    @property
    def reason(self) -> str:
        cloud, program = pending(self.refresh_changes), pending(self.program_changes)
        if not cloud and not program:
            return f"stack {self.stack}: no drift (cloud, state and program agree)"
        parts = []
        if cloud:
            parts.append(f"cloud differs from state ({_counts(cloud)})")
        if program:
            parts.append(f"program differs from state ({_counts(program)})")
        return f"stack {self.stack}: drift - " + "; ".join(parts)

    def markdown(self) -> str:
        verdict = "DRIFT" if self.drifted else "in sync"
        return "\n".join([f"# Drift check `{self.stack}`: {verdict}", "", self.reason, "",
                          "| source | pending changes |", "|---|---|",
                          f"| refresh (cloud vs state) | {_counts(self.refresh_changes)} |",
                          f"| preview (program vs state) | {_counts(self.program_changes)} |"])


def pending(changes: Mapping[str, int]) -> dict[str, int]:
    return {op: n for op, n in changes.items() if op != "same" and n}


def _counts(changes: Mapping[str, int]) -> str:
    return ", ".join(f"{op}: {n}" for op, n in sorted(changes.items())) or "none"


def open_stack(request: StackRequest, settings: Settings, secrets: ws.Secrets | None = None,
               ) -> Any:
    """Select or create the stack in a LocalWorkspace on the project dir; apply request config."""
    from pulumi import automation as auto

    ws.require_pulumi_cli()
    secrets = secrets or ws.secrets_for(settings, request.stack)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(request.project_dir), secrets_provider=secrets.provider,
        env_vars=ws.workspace_env(ws.backend_url(settings, request.backend_url), secrets))
    stack = auto.create_or_select_stack(stack_name=request.stack,
                                        work_dir=str(request.project_dir), opts=options)
    config = {key: auto.ConfigValue(value) for key, value in request.config.items()}
    current = stack.get_all_config().get("suite:cloud")
    if current is None:
        config.setdefault("suite:cloud", auto.ConfigValue(request.target))
    elif current.value != request.target:
        raise ConfigError(f"stack {request.stack!r} has suite:cloud={current.value!r} but the "
                          f"target is {request.target!r}; pick the matching stack")
    if config:
        stack.set_all_config(config)
    return stack


def _packs(request: StackRequest) -> dict[str, list[str]]:
    packs: dict[str, list[str]] = {}
    if request.policy_pack is not None:
        packs["policy_packs"] = [str(request.policy_pack)]
        if request.policy_pack_config is not None:
            packs["policy_pack_configs"] = [str(request.policy_pack_config)]
    return packs


def _outputs(stack: Any) -> dict[str, Any]:
    return {k: "[secret]" if v.secret else v.value for k, v in stack.outputs().items()}


def run_action(request: StackRequest, settings: Settings, action: Action, *,
               log: Log = print, confirm_destroy: str | None = None,
               secrets: ws.Secrets | None = None) -> StackOutputs:
    """Preview, up (preview → policy pack → up), refresh or destroy one stack."""
    if not request.uses_pulumi:
        return StackOutputs(request.target, request.stack, action,
                            note="local target: the platform from `suite up` is the "
                                 "environment; nothing to provision with Pulumi")
    ws.require_pulumi_cli()
    if action is Action.DESTROY and confirm_destroy != request.stack:
        raise ConfigError(f"destroy of stack {request.stack!r} needs confirm_destroy="
                          f"{request.stack!r} (got {confirm_destroy!r})")
    stack = open_stack(request, settings, secrets)
    streams = {"on_output": log, "on_error": log}
    if action is Action.DESTROY:
        summary = stack.destroy(**streams).summary
        return StackOutputs(request.target, request.stack, action,
                            changes=dict(summary.resource_changes or {}))
    if action is Action.REFRESH:
        summary = stack.refresh(**streams).summary
        return StackOutputs(request.target, request.stack, action, _outputs(stack),
                            dict(summary.resource_changes or {}))
    preview = stack.preview(**streams, **_packs(request))
    if action is Action.PREVIEW:
        return StackOutputs(request.target, request.stack, action, _outputs(stack),
                            dict(preview.change_summary or {}))
    result = stack.up(**streams, **_packs(request))
    outputs = {k: "[secret]" if v.secret else v.value for k, v in result.outputs.items()}
    return StackOutputs(request.target, request.stack, action, outputs,
                        dict(result.summary.resource_changes or {}))


def drift_check(request: StackRequest, settings: Settings, *, log: Log = print,
                secrets: ws.Secrets | None = None) -> DriftReport:
    """Refresh in preview mode (cloud vs state), then preview (program vs state)."""
    if not request.uses_pulumi:
        return DriftReport(request.stack, {}, {})
    ws.require_pulumi_cli()
    stack = open_stack(request, settings, secrets)
    refresh = stack.preview_refresh(on_output=log, on_error=log)
    preview = stack.preview(on_output=log, on_error=log)
    return DriftReport(request.stack, dict(refresh.change_summary or {}),
                       dict(preview.change_summary or {}))


def artifact_key(prefix: str, stack: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{stack}".lower()).strip("-")


def audit_event(settings: Settings, *, action: str, stack: str, inputs: dict[str, Any],
                outcome: str) -> None:
    from suite import audit  # imported late: the audit trail needs Vault only when used

    audit.append(settings, action=action, subject=f"pulumi-stack/{stack}",
                 inputs=inputs, outcome=outcome)


@task(name="pulumi-stack", cache_policy=NO_CACHE)
def provision_task(settings: Settings, request: StackRequest, action: Action = Action.UP,
                   confirm_destroy: str | None = None) -> StackOutputs:
    logger = get_run_logger()
    result = run_action(request, settings, action, log=logger.info,
                        confirm_destroy=confirm_destroy)
    create_markdown_artifact(markdown=result.markdown(), key=artifact_key("pulumi", result.stack),
                             description=f"Pulumi {action.value} of {result.stack}")
    if request.uses_pulumi:
        audit_event(settings, action=f"pulumi.{action.value}", stack=request.stack,
                    inputs={"target": request.target, "config": dict(request.config)},
                    outcome="ok")
    return result


@task(name="pulumi-drift-check", cache_policy=NO_CACHE)
def drift_check_task(settings: Settings, request: StackRequest) -> DriftReport:
    return drift_check(request, settings, log=get_run_logger().info)


@task(name="report-drift", cache_policy=NO_CACHE)
def report_drift_task(settings: Settings, report: DriftReport) -> str:
    """The drift verdict as an artifact and an audit event; returns the reason."""
    create_markdown_artifact(markdown=report.markdown(), key=artifact_key("drift", report.stack),
                             description=report.reason)
    audit_event(settings, action="pulumi.drift-check", stack=report.stack,
                inputs={"refresh": dict(report.refresh_changes),
                        "preview": dict(report.program_changes)},
                outcome="drift" if report.drifted else "in-sync")
    (get_run_logger().warning if report.drifted else get_run_logger().info)(report.reason)
    return report.reason
