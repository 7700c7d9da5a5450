"""The rollout steps of a release (Argo Rollouts style), called by the ``release`` flow:
set weight, pause, analyse; MARGINAL asks a human; FAIL/ERROR raise :class:`RolledBack`."""

from __future__ import annotations

import time
from pathlib import Path

from policies.release import ReleasePolicy
from suite.errors import SuiteError
from suite.load import LoadGenerator
from suite.settings import Settings
from tasks.analyze import analysis_task
from tasks.canary.scoring import Verdict
from tasks.deploy import set_weight_task
from tasks.release import ask_approval, audit_task, stage
from tasks.report import ReleaseRecord, StageRecord
from tasks.targets import get_target

PROJECT = Path(__file__).resolve().parents[1]


class RolledBack(SuiteError):
    """The release was rolled back on purpose (analysis FAIL/ERROR, or a human said so)."""


def stable_missing(settings: Settings, target: str, service: str) -> bool:
    return get_target(target, settings).status(service).stable is None


def load_stage(rec: ReleaseRecord, load: LoadGenerator) -> StageRecord:
    report = load.stop()
    rec.load_failed = report.failed
    return StageRecord("synthetic-load", report.duration_s, "ok" if not report.failed else
                       f"{report.failed} failed", report.summary())


def canary_steps(rec: ReleaseRecord, settings: Settings, target: str,
                  service: str, template: str, policy: ReleasePolicy) -> None:
    """Argo-style steps; raises RolledBack (inside the transaction: hooks undo the deploy)."""
    weight = 0
    for number, step in enumerate(policy.steps, start=1):
        if step.kind == "set_weight":
            with stage(rec, f"step {number}: weight {step.weight} %"):
                set_weight_task(target, service, step.weight, settings)
            weight = step.weight
        elif step.kind == "pause":
            with stage(rec, f"step {number}: pause {step.seconds:g}s"):
                time.sleep(step.seconds)
        else:
            with stage(rec, f"step {number}: analysis at {weight} %"):
                result = analysis_task(str(PROJECT / template), target, service, number,
                                       weight, step.seconds, step.interval, settings)
            data = result.to_dict()
            rec.steps.append(data)
            audit_task(settings, "canary.analysis", f"{rec.release} step {number}",
                       {"weight": weight, "verdict": data["verdict"], "score": data["score"],
                        "reason": data["reason"]}, outcome=str(data["verdict"]))
            verdict = Verdict(str(data["verdict"]))
            print(f"step {number} at {weight} %: {verdict} (score {data['score']}): "
                  f"{data['reason']}")
            if verdict == Verdict.PASS:
                continue
            if verdict == Verdict.MARGINAL:
                answer = ask_approval(rec, number, policy.approval_timeout_s)
                decision = answer.decision if answer else "rollback"
                who = answer.approver if answer else "timeout"
                why = answer.reason if answer else (
                    f"no answer within {policy.approval_timeout_s}s")
                rec.approvals.append({"decision": decision, "approver": who, "reason": why})
                audit_task(settings, "canary.approval", f"{rec.release} step {number}",
                           {"decision": decision, "reason": why}, outcome=decision, actor=who)
                if decision == "approve":
                    continue
                raise RolledBack(f"step {number} MARGINAL (score {data['score']}); {who} chose "
                                 f"rollback: {why}")
            raise RolledBack(f"step {number} {verdict} at {weight} %: {data['reason']}")
    if weight < 100:
        with stage(rec, "full traffic"):
            set_weight_task(target, service, 100, settings)
