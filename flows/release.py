"""Flow ``release``: plan → build → scan → test → provision → deploy by the manifest's strategy
→ promote or roll back → (services with a model) move ``champion``.

Wiring only: every stage is a task in ``tasks/``. The service is a registered name; its
repository, branch and manifest (``suite.yaml`` at the commit) say what to build and how to roll
out. One release per service at a time (the Prefect concurrency limit ``release-<service>``);
different services release side by side on the work pool's workers. The deploy tasks run inside
a Prefect transaction whose rollback hooks send all traffic back to stable if anything after
them fails. Every stage is audited and the run ends with a report.

Promotion is one unit (docs/reliability.md): the traffic moves (the old stable kept, unrouted),
the ``deploy.promote`` record, the ``champion`` move — all inside the transaction, so any
failure there is compensated (traffic back, champion undone); ``finalize`` is the point of no
return, after which nothing changes the outcome. After any failure :func:`tasks.release.settle`
checks what serves and makes the champion agree with it, so a run never says FAILED while the
new version serves. A rolled-back release ends in a COMPLETED state named ``RolledBack``.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.transactions import transaction

from policies.release import load as load_policy
from suite import settings as settings_mod
from suite.errors import ConfigError
from suite.load import LoadGenerator
from suite.services.onboard import (
    concurrency_limit,
    ensure_concurrency_limit,
    name_run_state,
)
from suite.services.spec import StrategyKind
from tasks.admission import admit_task
from tasks.build import build_task, for_service
from tasks.compliance import start_subject
from tasks.control import Active, Releases
from tasks.deploy import (
    bind_model,
    fetch_model,
    new_release_id,
    resolve_model_version,
    workload_for,
)
from tasks.notify import Event, notify_task, outcome_event
from tasks.plan import plan_task
from tasks.reconcile import on_release_ended, reconcile_task
from tasks.release import (
    Outcome,
    audit_task,
    check_override_task,
    current_champion,
    finalize_release,
    outcome_state,
    promote_model_task,
    provision_local_task,
    settle_task,
    stage,
)
from tasks.report import ReleaseRecord, report_task
from tasks.rollout import STRATEGIES, RolledBack, Rollout, first, load_stage, stable_missing
from tasks.scan import scan_task
from tasks.test_stage import container_test_task

TARGETS = ("local",)
#: how long a release tries for its service's slot before it shows itself as waiting (long
#: enough that a slow answer of a busy API is not taken for a held slot)
SLOT_PATIENCE_S = 10.0


@flow(name="release", log_prints=True, on_crashed=[on_release_ended],
      on_cancellation=[on_release_ended])
def release(
    service: str,
    git_sha: str = "",
    strategy: StrategyKind | None = None,
    replicas: int | None = None,
    model_version: str = "",
    env: dict[str, str] | None = None,
    synthetic_load_rps: float = 0.0,
    synthetic_load_path: str = "/",
    synthetic_load_body: dict[str, object] | None = None,
    target: str = "local",
    triggered_by: str = "manual",
    approval_token: str = "",
) -> Outcome:
    """Release the registered ``service`` at ``git_sha`` (default: its branch's head).

    Overrides of the manifest for this run: ``strategy`` (canary | blueGreen | rolling),
    ``replicas``, ``model_version`` (default: the manifest's alias), ``env`` (added to the
    manifest's environment: fault injection in demos and tests). ``synthetic_load_rps``: requests
    (GETs of ``synthetic_load_path``, or POSTs of ``synthetic_load_body`` as JSON)
    sent through the router by the flow itself during the rollout, for environments without real
    traffic (demo, tests). A ``strategy`` other than the manifest's needs ``approval_token``, an
    approver's identity token (`suite approve-token`; issue 13 item 4): the run refuses without
    it, and ``release.start`` records who allowed the override.
    """
    settings = settings_mod.load()
    if target not in TARGETS:
        raise ConfigError(f"target {target!r}: the release flow drives {', '.join(TARGETS)}; "
                          f"provision Kubernetes with the `provision` flow (Pulumi)")
    ensure_concurrency_limit(settings, service)
    slot = ExitStack()
    try:
        slot.enter_context(concurrency(concurrency_limit(service), occupy=1, strict=True,
                                       timeout_seconds=SLOT_PATIENCE_S))
    except TimeoutError:
        print(f"another release of {service} is running: waiting for its slot (concurrency "
              f"limit {concurrency_limit(service)!r}, one release per service at a time)")
        run_id = str(flow_run.get_id() or "")
        name_run_state(settings, run_id, "AwaitingReleaseSlot")
        slot.enter_context(concurrency(concurrency_limit(service), occupy=1, strict=True))
        name_run_state(settings, run_id, "Running")
    with slot:
        reconcile_task(settings, service, f"release run {flow_run.get_name()} started",
                       free_slot=False)
        return _release(settings, service, git_sha, strategy, replicas, model_version,
                        env or {}, (synthetic_load_rps, synthetic_load_path, synthetic_load_body),
                        target, triggered_by, approval_token)


def _release(settings: settings_mod.Settings, service: str, git_sha: str,
             strategy: StrategyKind | None, replicas: int | None, model_version: str,
             env: dict[str, str],
             synthetic: tuple[float, str, dict[str, object] | None], target: str,
             triggered_by: str, approval_token: str = "") -> Outcome:
    log = get_run_logger()
    policy = load_policy()
    rec = ReleaseRecord(release="", service=service, strategy="", target=target,
                        triggered_by=triggered_by)
    releases = Releases(settings)
    load: LoadGenerator | None = None
    notify: tuple[str, ...] = ()  # the manifest's notifications: URLs, once it is read
    version = ""
    deployed = False  # the strategy ran to its end: what is left is the promotion unit
    bound: list[str | None] = [None, None]  # the model's name and version, once resolved
    try:
        with stage(rec, "plan"):
            plan = plan_task(settings, service, git_sha)
        spec = plan.spec
        notify = spec.notify
        kind = StrategyKind(strategy) if strategy else spec.strategy.kind
        override: dict[str, str] = {}
        if kind != spec.strategy.kind:  # run parameters never loosen a gate unapproved
            what = f"strategy {kind.value} instead of the manifest's {spec.strategy.kind.value}"
            override = {"strategy": what, "approved_by": check_override_task(
                settings, what, approval_token)}
        rec.strategy, rec.git_sha = kind.value, plan.git_sha
        rec.release = new_release_id(plan.git_sha)
        # no record, no release: nothing is written or changed before release.start is signed
        audit_task(settings, "release.start", start_subject(rec.release, service, triggered_by),
                   {"service": service, "git_sha": plan.git_sha, "strategy": kind.value,
                    "target": target, "manifest": spec.digest,
                    "run": str(flow_run.get_id()), "triggered_by": triggered_by,
                    **({"override": override} if override else {})})
        releases.start(Active(service, rec.release, str(flow_run.get_id() or ""), kind.value,
                              datetime.now(UTC).isoformat(timespec="seconds"),
                              notify=tuple(notify)))
        notify_task(settings, notify, Event.STARTED, service, rec.release, "running",
                    f"{plan.git_sha[:12]} by {kind.value} (triggered by {triggered_by})")

        with stage(rec, "build", lambda: rec.image):
            image = build_task(for_service(spec, Path(plan.source)),
                               settings)
            rec.image = image.pinned
        # admission: nothing runs (tests, canary, stable) unless it is what this build pushed
        with stage(rec, "admit"):
            admit_task(settings, image.pinned, service, rec.release, plan.git_sha, plan.source)
        with stage(rec, "scan"):
            gate = scan_task(image=image.pinned, repo=plan.source, settings=settings,
                             service=service)
            rec.gate = {"allowed": gate.allowed, "warnings": list(gate.warnings),
                        "waivers": list(gate.waivers_used)}
        with stage(rec, "test", lambda: f"{tests.passed} passed, {tests.failed} failed"):
            tests = container_test_task(image.pinned, list(spec.test.command),
                                        spec.test.timeout_s, f"{service}@{plan.git_sha[:12]}",
                                        settings)
        with stage(rec, "provision"):
            provision_local_task(settings)
        wl = workload_for(spec, release=rec.release, git_sha=plan.git_sha, image=image.pinned,
                          replicas=replicas, env=env)
        if spec.model is not None:
            with stage(rec, "model"):
                version = resolve_model_version(settings, spec.model.name, model_version or None,
                                                spec.model.alias)
                bound[:] = [spec.model.name, version]
                model = fetch_model(settings, spec.model.name, version, service=service,
                                    release=rec.release)
                rec.model = f"{spec.model.name} v{version}"
                rec.champion_before = current_champion(settings, spec.model.name)
                # the intent knows the champion to give back if the run dies mid-promotion
                releases.update(service, model=spec.model.name, model_version=version,
                                champion_before=rec.champion_before)
            wl = bind_model(wl, spec.model, model)

        ro = Rollout(rec, settings, target, spec, wl, plan.templates,
                     approval_timeout_s=policy.approval_timeout_s)
        rate, path, body = synthetic
        if rate > 0:
            load = LoadGenerator(f"{settings.url('haproxy')}{path}", rate, 3600, None, body=body,
                                 host=spec.host).start()
        run = first if stable_missing(settings, target, service) else STRATEGIES[kind]
        with transaction():
            run(ro)  # canary / blue-green: all traffic on the new version, the old one kept
            deployed = True
            # the rest of the promotion unit: its record, then the champion (which undoes
            # itself on any failure); a failure here rolls the traffic back (the hooks)
            audit_task(settings, "deploy.promote", rec.release,
                       {"service": service, "strategy": kind.value, "image": rec.image,
                        "champion": [rec.champion_before, version or None]})
            if spec.model is not None:
                with stage(rec, "champion"):
                    before = promote_model_task(settings, spec.model.name, version,
                                                f"release {rec.release} ({plan.git_sha[:12]}) "
                                                f"promoted")
                    rec.champion_before, rec.champion_after = before, version
        # past the point of no return: the outcome is promoted whatever finalize says
        rec.outcome = "promoted"
        rec.reason = f"{service} {plan.git_sha[:12]}{f' with {rec.model}' if rec.model else ''} " \
                     f"is stable"
        with stage(rec, "finalize"):
            note = finalize_release(target, service, settings)
        if note:
            rec.notes.append(note)
            log.warning("%s", note)
    except RolledBack as exc:
        rec.outcome, rec.reason = "rolled_back", str(exc)
        _settle(rec, settings, target, service, bound)
    except Exception as exc:
        serving = _settle(rec, settings, target, service, bound)
        if deployed and serving == "new":  # failed in the promotion unit, past any way back
            _completed_despite(rec, exc)
        else:
            rec.outcome, rec.reason = "failed", f"{type(exc).__name__}: {exc}"
            if serving == "new":  # a rolling or first deploy that failed its own checks
                rec.reason += "; the new version serves (a rolling update has no way back)"
            log.error("release %s of %s failed: %s", rec.release or "(none)", service,
                      rec.reason)
            _end(rec, settings, releases, service, load, notify)
            raise
    _end(rec, settings, releases, service, load, notify)
    return outcome_state({"service": service, **rec.summary()}, rec.outcome, rec.reason)


def _settle(rec: ReleaseRecord, settings: settings_mod.Settings, target: str, service: str,
            bound: list[str | None]) -> str:
    """What serves and the champion agree (tasks/release.settle); its notes go to the report."""
    if not rec.release:
        return "old"  # nothing was deployed yet
    name, version = bound[0], bound[1]
    side = (name, version, rec.champion_before) if name and version else None
    try:
        settled = settle_task(settings, target, service, rec.release, side)
    except Exception as exc:  # settle never raises itself; its task wrapper might
        rec.notes.append(f"settle failed: {type(exc).__name__}: {exc}"[:500])
        return "unknown"
    rec.notes.extend(settled.notes)
    if settled.serving == "new":
        rec.champion_after = version
    return settled.serving


def _completed_despite(rec: ReleaseRecord, exc: BaseException) -> None:
    """The strategy had finished and the new version serves (the champion follows it): the
    release completed despite ``exc`` — never a run that says FAILED while the new version it
    promoted serves."""
    rec.notes.append(f"completed despite {type(exc).__name__}: {exc}"[:500])
    rec.outcome = "promoted"
    rec.reason = f"{rec.service} {rec.git_sha[:12]} is stable (after {type(exc).__name__})"


def _end(rec: ReleaseRecord, settings: settings_mod.Settings, releases: Releases, service: str,
         load: LoadGenerator | None, notify: tuple[str, ...]) -> None:
    """The release's last records. None of them replaces the outcome: a failure is logged and
    kept in the report and the result (``notes``)."""
    log = get_run_logger()
    if load is not None:
        rec.stages.append(load_stage(rec, load))
    if rec.release:
        releases.update(service, phase="ended", outcome=rec.outcome, reason=rec.reason[:500])
    try:
        audit_task(settings, f"release.{rec.outcome}", rec.release or "(none)",
                   {"service": service, **rec.summary()}, outcome=rec.outcome)
    except Exception as exc:
        note = (f"the audit record release.{rec.outcome} could not be written "
                f"({type(exc).__name__}: {exc}); the outcome stands")[:500]
        rec.notes.append(note)
        log.error("%s", note)
    notify_task(settings, notify, outcome_event(rec.outcome), service, rec.release,
                rec.outcome, rec.reason)
    try:
        report_task(rec)
    except Exception as exc:
        log.error("the release report of %s could not be written: %s: %s", rec.release,
                  type(exc).__name__, exc)
