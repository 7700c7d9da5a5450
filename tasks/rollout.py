"""The rollout strategies of a release, one function each (as Argo Rollouts has one reconciler
per strategy), called by the ``release`` flow inside its transaction: ``canary`` (weights,
pauses and analyses from the manifest's steps), ``blue_green`` (preview, optional
pre-promotion analysis, switch), ``rolling`` (replicas replaced one by one) and ``first``
(nothing serves yet). FAIL/ERROR, an abort, or a human's rollback raise :class:`RolledBack`;
the transaction's hooks then send all traffic back to stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from policies.canary import load as load_template
from suite.errors import SuiteError
from suite.load import LoadGenerator
from suite.people import Checked
from suite.services.spec import AnalysisRef, ServiceSpec, StrategyKind
from suite.settings import Settings
from tasks.analyze import analysis_task, pause_templates, pause_watch
from tasks.canary.scoring import Verdict
from tasks.control import Command, Releases
from tasks.deploy import (
    deploy_canary_task,
    deploy_preview_task,
    deploy_stable_task,
    promote_task,
    set_weight_task,
)
from tasks.notify import Event, notify_task
from tasks.release import approval_checker, ask_approval, audit_task, stage
from tasks.report import ReleaseRecord, StageRecord
from tasks.smoke import smoke_task
from tasks.targets import get_target
from tasks.targets.base import DeployTarget, Instance, Role, Workload
from tasks.warmup import warmup_task

#: how often an indefinite pause looks for `suite release promote|abort`
POLL_SECONDS = 1.0
#: the tracks an analysis judges: one of their replicas dying ends the step ERROR (a dead
#: stable replica is healed instead)
JUDGED = ("canary", "preview")


class RolledBack(SuiteError):
    """The release was rolled back on purpose (analysis FAIL/ERROR, an abort, a human)."""


@dataclass(frozen=True)
class Rollout:
    """What every strategy needs: the record it fills, where, which service, which templates."""

    rec: ReleaseRecord
    settings: Settings
    target: str
    spec: ServiceSpec
    workload: Workload
    templates: dict[str, str]
    approval_timeout_s: int = 600
    sleep: Callable[[float], None] = time.sleep
    #: checks an approver's identity token (default: Vault, tasks.release.approval_checker)
    verify: Callable[[str | None], Checked] | None = None

    @property
    def service(self) -> str:
        return self.spec.service

    @property
    def releases(self) -> Releases:
        return Releases(self.settings)

    def check(self, token: str | None) -> Checked:
        """Checks the token and spends its one use."""
        return (self.verify or approval_checker(self.settings))(token)

    def peek(self, token: str | None) -> Checked:
        """Checks the token without spending it (the command that acts on it spends it)."""
        return (self.verify or approval_checker(self.settings, claim=False))(token)


def stable_missing(settings: Settings, target: str, service: str) -> bool:
    return get_target(target, settings).status(service).stable is None


def load_stage(rec: ReleaseRecord, load: LoadGenerator) -> StageRecord:
    report = load.stop()
    rec.load_failed = report.failed
    return StageRecord("synthetic-load", report.duration_s, "ok" if not report.failed else
                       f"{report.failed} failed", report.summary())


def _smoke(ro: Rollout, address: str) -> None:
    if ro.spec.strategy.smoke_requests:
        smoke_task(ro.settings.url(address), ro.spec.strategy.smoke_requests, ro.spec.host,
                   ro.spec.readiness)


def _command(ro: Rollout, consume: bool = True) -> Command | None:
    """The command sent for this release, acted on only when it may be: a promote (which
    may skip steps) needs an approver's identity token, and the recorded actor is the identity
    Vault vouches for. An abort with a token is checked the same way; one without a token
    comes from the operator's platform itself (`suite down --abort-releases`: the control
    file is the operator's) and only ever returns to stable."""
    found = ro.releases.pending(ro.service, ro.rec.release, consume=consume)
    if found is None:
        return None
    actor = found.actor
    if found.command == Command.PROMOTE or found.identity_token:
        checked = ro.check(found.identity_token)
        if checked.approver is None:
            audit_task(ro.settings, f"release.{found.command.value}.refused", ro.rec.release,
                       {"reason": checked.reason, "sent_as": found.actor}, outcome="refused")
            print(f"{found.command.value} refused: {checked.reason}")
            return None
        actor = checked.approver
    audit_task(ro.settings, f"release.{found.command.value}", ro.rec.release,
               {"reason": found.reason}, actor=actor)
    if found.command == Command.ABORT:
        raise RolledBack(f"aborted by {actor}: {found.reason or 'no reason given'}")
    return found.command


def _pause(ro: Rollout, number: int, seconds: float | None,
           look: Callable[[], None] = lambda: None) -> bool:
    """Wait ``seconds``, or until `suite release promote` for an indefinite pause (which it
    ends: the steps after it still run). True when a promote during a timed pause said to skip
    the remaining steps. ``look`` runs at every poll (the sequential tests, _watched_pause)."""
    ro.releases.update(ro.service, phase="paused", step=f"{number}: pause")
    deadline = None if seconds is None else time.monotonic() + seconds
    if seconds is None:
        print(f"step {number}: paused until `suite release promote {ro.service}` "
              f"(or abort)")
    while deadline is None or time.monotonic() < deadline:
        look()
        if _command(ro) == Command.PROMOTE:
            ro.releases.update(ro.service, phase="running")
            return deadline is not None
        left = POLL_SECONDS if deadline is None else min(POLL_SECONDS,
                                                         deadline - time.monotonic())
        if left > 0:
            ro.sleep(left)
    ro.releases.update(ro.service, phase="running")
    return False


@contextmanager
def _watched_pause(ro: Rollout, number: int, weight: int) -> Iterator[Callable[[], None]]:
    """The sequential tests of the templates around pause ``number`` (analyze.pause_templates),
    fed at each poll: a critical rejection records the pause FAIL and rolls back at once;
    otherwise the pause is recorded with their p-values over time."""
    names = pause_templates(ro.spec.strategy.steps, number)
    watch = pause_watch({n: ro.templates[n] for n in names}, ro.settings, ro.service, number,
                        weight) if names else None

    def look() -> None:
        failed = watch.look() if watch is not None else None
        if failed is not None:
            ro.rec.steps.append({**failed.to_dict(), "template": ", ".join(names)})
            audit_task(ro.settings, "canary.analysis", f"{ro.rec.release} step {number}",
                       {"template": ", ".join(names), "weight": weight, "verdict": "FAIL",
                        "score": 0.0, "reason": failed.result.reason}, outcome="FAIL")
            raise RolledBack(f"step {number} FAIL during the pause at {weight} %: "
                             f"{failed.result.reason}")

    yield look
    if watch is not None and watch.fed:
        ro.rec.steps.append({**watch.record().to_dict(), "template": ", ".join(names)})


def _analysis(ro: Rollout, number: int, weight: int, ref: AnalysisRef) -> None:
    """Each template the step names; the worst verdict decides (MARGINAL asks a human)."""
    ro.releases.update(ro.service, step=f"{number}: analysis", weight=weight)
    deployed = get_target(ro.target, ro.settings)
    worst = Verdict.PASS
    reasons = []
    checked: dict[str, bool] = {}  # an abort's token is asked of Vault once, not every poll
    for name in ref.templates:
        def health() -> list[str]:
            stop = ro.releases.pending(ro.service, ro.rec.release, consume=False)
            if stop is not None and stop.command == Command.ABORT:
                if stop.identity_token and stop.at not in checked:
                    checked[stop.at] = ro.peek(stop.identity_token).ok
                if checked.get(stop.at, True):
                    return [f"abort requested by {stop.actor}"]
            return deployed.problems(ro.service, JUDGED)  # a dead canary/preview: ERROR

        def heal() -> list[str]:
            return _heal_stable(ro, deployed, number)

        with stage(ro.rec, f"step {number}: analysis {name} at {weight} %"):
            result = analysis_task(ro.templates[name], ro.target, ro.service, number, weight,
                                   ref.duration_s, ref.interval_s, ro.settings, health=health,
                                   heal=heal)
        data = result.to_dict()
        data["template"] = name
        ro.rec.steps.append(data)
        verdict = Verdict(str(data["verdict"]))
        audit_task(ro.settings, "canary.analysis", f"{ro.rec.release} step {number}",
                   {"template": name, "weight": weight, "verdict": verdict.value,
                    "score": data["score"], "reason": data["reason"]}, outcome=verdict.value)
        print(f"step {number} at {weight} % ({name}): {verdict} (score {data['score']}): "
              f"{data['reason']}")
        ro.releases.update(ro.service, verdict=f"{verdict.value} ({name})")
        _command(ro)  # an abort during the analysis rolls back now
        reasons.append(f"{name}: {data['reason']}")
        if verdict in (Verdict.FAIL, Verdict.ERROR):
            raise RolledBack(f"step {number} {verdict} at {weight} % ({name}): "
                             f"{data['reason']}")
        if verdict == Verdict.MARGINAL:
            worst = Verdict.MARGINAL
    if worst == Verdict.MARGINAL:
        _approve(ro, number, "; ".join(reasons))


def _heal_stable(ro: Rollout, deployed: DeployTarget, number: int) -> list[str]:
    """Dead stable replicas during an analysis are replaced (not a verdict on the canary: the
    step starts its window again after the heal, tasks/analyze.py); each heal is audited."""
    healed = deployed.heal(ro.service, Role.STABLE)
    if healed:
        audit_task(ro.settings, "deploy.heal", f"{ro.rec.release} step {number}",
                   {"service": ro.service, "role": "stable", "replaced": healed})
        print(f"step {number}: stable healed: {'; '.join(healed)}; the step's analysis "
              f"starts again")
    return healed


def _approve(ro: Rollout, number: int, why_marginal: str) -> None:
    ro.releases.update(ro.service, phase="waiting-approval")
    notify_task(ro.settings, ro.spec.notify, Event.WAITING_APPROVAL, ro.service, ro.rec.release,
                "waiting", f"step {number} MARGINAL ({why_marginal}): `suite release promote|"
                f"abort {ro.service}` or the run's form; rolls back in {ro.approval_timeout_s}s")
    def refused(reason: str) -> None:
        audit_task(ro.settings, "canary.approval.refused", f"{ro.rec.release} step {number}",
                   {"reason": reason}, outcome="refused")
        print(f"step {number}: an answer was refused: {reason}; still waiting")

    answer = ask_approval(ro.rec, number, ro.approval_timeout_s, ro.check, refused)
    ro.releases.update(ro.service, phase="running")
    decision = answer.decision if answer else "rollback"
    who = answer.approver if answer else "timeout"
    why = answer.reason if answer else f"no answer within {ro.approval_timeout_s}s"
    ro.rec.approvals.append({"decision": decision, "approver": who, "reason": why})
    audit_task(ro.settings, "canary.approval", f"{ro.rec.release} step {number}",
               {"decision": decision, "reason": why}, outcome=decision, actor=who)
    if decision != "approve":
        raise RolledBack(f"step {number} MARGINAL ({why_marginal}); {who} chose rollback: {why}")


def _warm_up(ro: Rollout, instances: tuple[Instance, ...]) -> None:
    """The templates' ``warmup:`` requests straight to each new replica (tasks/warmup.py),
    before the canary gets any weight: its first seconds of traffic are then the version's."""
    paths = {n: p for n, p in ro.templates.items() if load_template(p).warmup is not None}
    if not paths or not instances:
        return
    urls = [f"http://127.0.0.1:{inst.port}" for inst in instances]  # the local target's ports
    said: list[str] = []
    with stage(ro.rec, "warm-up canary", lambda: said[0] if said else ""):
        said.append(warmup_task(paths, urls, ro.settings, ro.service))
    print(f"warm-up: {said[0]}")


def canary(ro: Rollout) -> None:
    with stage(ro.rec, "deploy-canary"):
        deployed = deploy_canary_task(ro.target, ro.workload, ro.settings)
    _warm_up(ro, deployed.instances.get(Role.CANARY, ()))
    weight = 0
    for number, step in enumerate(ro.spec.strategy.steps, start=1):
        if _command(ro) == Command.PROMOTE:
            print(f"promote requested: skipping steps {number}..")
            break
        if step.kind == "setWeight":
            with stage(ro.rec, f"step {number}: weight {step.weight} %"):
                set_weight_task(ro.target, ro.service, step.weight, ro.settings)
            weight = step.weight
            ro.releases.update(ro.service, step=f"{number}: setWeight", weight=weight)
        elif step.kind == "pause":
            label = "until promoted" if step.pause_s is None else f"{step.pause_s:g}s"
            with stage(ro.rec, f"step {number}: pause {label}"), \
                    _watched_pause(ro, number, weight) as look:
                skip = _pause(ro, number, step.pause_s, look)
            if skip:
                break
        elif step.analysis is not None:
            _analysis(ro, number, weight, step.analysis)
    if weight < 100:
        with stage(ro.rec, "full traffic"):
            set_weight_task(ro.target, ro.service, 100, ro.settings)
    with stage(ro.rec, "promote"):
        promote_task(ro.target, ro.service, ro.settings)


def blue_green(ro: Rollout) -> None:
    with stage(ro.rec, "deploy-preview"):
        deploy_preview_task(ro.target, ro.workload, ro.settings)
        _smoke(ro, "haproxy_preview")
    pre = ro.spec.strategy.pre_promotion
    if pre is not None:
        # the preview has no live traffic to compare: its template must measure the preview
        _analysis(ro, 1, 0, pre)
    if not ro.spec.strategy.auto_promotion:
        with stage(ro.rec, "pause until promoted"):
            _pause(ro, 2, None)
    with stage(ro.rec, "switch"):
        promote_task(ro.target, ro.service, ro.settings)
        _smoke(ro, "haproxy")


def rolling(ro: Rollout) -> None:
    with stage(ro.rec, "deploy-rolling"):
        deploy_stable_task(ro.target, ro.workload, ro.settings)
        _smoke(ro, "haproxy")


def first(ro: Rollout) -> None:
    with stage(ro.rec, "deploy-first"):
        deploy_stable_task(ro.target, ro.workload, ro.settings)
        _smoke(ro, "haproxy")


STRATEGIES: dict[StrategyKind, Callable[[Rollout], None]] = {
    StrategyKind.CANARY: canary,
    StrategyKind.BLUE_GREEN: blue_green,
    StrategyKind.ROLLING: rolling,
}
