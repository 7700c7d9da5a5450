"""The reconciler: an unfinished release goes back to stable, whatever ended its run.

A release writes its intent into the service's target state (``tasks/targets/state.py``) and
clears it when it ends. An intent whose run is gone — the flow-run process was killed, its
worker died, the run was cancelled, the platform went down — is an unfinished release: the
canary (or preview) was never judged. :func:`reconcile` rolls it back with the controller's own
transitions (canary/preview removed, 100 % stable, route file and HAProxy in agreement, stable
replicas that are gone started again), gives the model's ``champion`` alias back when the run
died after moving it (the intent records the champion before the release), ends the ``Active``
record with outcome ``rolled_back``,
marks the run Crashed in Prefect if it still looks alive there, and appends one audit record
``release.reconciled`` naming the run and why. It runs from (a) the release flow's
``on_crashed`` / ``on_cancellation`` hooks and the ``release-crashed-rollback`` automation
(``flows/rollback.py``), (b) ``suite up``, (c) the start of the next release of the service.
Several of them may race: a lock per service makes the first one do it and the others find
nothing left to do.

Like Argo Rollouts and Flagger, which reconcile after any restart, the state on disk decides —
never a process's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE

from suite import audit, prefect_http
from suite.errors import SuiteError
from suite.platform.files import exclusive
from suite.settings import Settings
from tasks.control import Releases, process_started
from tasks.targets.base import Deployment, Role, Workload
from tasks.targets.state import Intent, TargetState

#: Prefect state types of a run that will never do anything again
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})


class Target(Protocol):
    """What the reconciler needs of the controller (``tasks.targets.controller.Controller``)."""

    def state(self, service: str) -> TargetState: ...

    def rollback(self, service: str) -> Deployment: ...

    def reconcile(self, workload: Workload, role: Role) -> Deployment: ...

    def problems(self, service: str) -> list[str]: ...

    def sweep(self, service: str, state: TargetState | None = None) -> list[str]: ...


@dataclass(frozen=True)
class Reconciled:
    service: str
    release: str
    flow_run_id: str
    why: str
    outcome: str  # rolled_back | promoted (the new version was already all of stable)
    stable: str  # the version serving now
    champion: str = ""  # what was done to the model's champion alias ("": nothing)

    def line(self) -> str:
        moved = f"; {self.champion}" if self.champion else ""
        return (f"{self.service}: release {self.release} (run {self.flow_run_id}) "
                f"{self.outcome.replace('_', ' ')} — {self.why}; stable is {self.stable}"
                f"{moved}")


#: reads a flow run's state: run id -> (type, name), or None when Prefect cannot say
RunReader = Callable[[str], "tuple[str, str] | None"]


def prefect_run_state(settings: Settings) -> RunReader:
    def read(run_id: str) -> tuple[str, str] | None:
        try:
            resp = prefect_http.request(settings.prefect_api_url, "GET", f"/flow_runs/{run_id}",
                                        delays=(0.5, 1.0))
        except Exception:  # an unreachable Prefect cannot say
            return None
        if resp.status_code == 404:
            return "DELETED", "Deleted"
        if resp.status_code != 200:
            return None
        state = resp.json().get("state") or {}
        return str(state.get("type", "")), str(state.get("name", ""))

    return read


def process_alive(intent: Intent) -> bool | None:
    """Whether the flow-run process that wrote ``intent`` still runs (None: unknown)."""
    if not intent.pid:
        return None
    started = process_started(intent.pid)
    return started != 0.0 and abs(started - intent.pid_started) < 1.0


def run_gone(intent: Intent, read_run: RunReader,
             alive: Callable[[Intent], bool | None] = process_alive) -> str:
    """Why the release's run will never finish it ("" while it may still be going)."""
    state = read_run(intent.flow_run_id) if intent.flow_run_id else None
    if state is not None and (state[0] in FINAL or state[0] == "DELETED"):
        return f"its run is {state[1] or state[0]}"
    if alive(intent) is False:
        seen = f" (Prefect still says {state[1] or state[0]})" if state else ""
        return f"its flow-run process (pid {intent.pid}) is gone{seen}"
    return ""


def mark_crashed(settings: Settings, run_id: str, why: str) -> None:
    """A run whose process is gone is Crashed in Prefect too (the zombie automation would say
    so ~90 s later); a failure only loses the label."""
    read = prefect_run_state(settings)(run_id)
    if not run_id or read is None or read[0] in FINAL or read[0] == "DELETED":
        return
    try:
        prefect_http.request(settings.prefect_api_url, "POST", f"/flow_runs/{run_id}/set_state",
                             json={"state": {"type": "CRASHED", "name": "Crashed",
                                             "message": f"reconciled: {why}"[:1000]},
                                   "force": True}, delays=(0.5, 1.0))
    except Exception:  # noqa: S110 - the label only; the rollback is done
        pass


def free_release_slot(settings: Settings, service: str, lease: str = "") -> None:
    """The dead run's slot of ``release-<service>`` is free again at once, not when its lease
    expires (300 s): only one release of a service runs, and its run is gone. With the run's
    lease (the intent records it) exactly that lease is given back and revoked, so Prefect
    never frees it a second time when it would have expired (which would free the slot of the
    next release). Without it (an intent of an older version), the limit's count is reset.
    A failure only makes the next release wait for the lease."""
    from suite.services.onboard import concurrency_limit

    try:
        if lease:
            prefect_http.request(settings.prefect_api_url, "POST",
                                 "/v2/concurrency_limits/decrement-with-lease",
                                 json={"lease_id": lease}, delays=(0.5, 1.0))
        else:
            prefect_http.request(settings.prefect_api_url, "PATCH",
                                 f"/v2/concurrency_limits/{concurrency_limit(service)}",
                                 json={"active_slots": 0}, delays=(0.5, 1.0))
    except Exception:  # noqa: S110 - see above
        pass


#: makes the release's ``champion`` agree with what serves: (intent, the release's version
#: serves) -> what it did ("" when the champion already agreed)
ChampionFix = Callable[[Intent, bool], str]


def champion_follows(settings: Settings) -> ChampionFix:
    """The champion follows what serves, as :func:`tasks.release.settle` does in the run: a
    release that was rolled back has its move undone (``champion`` back to the version the
    intent recorded), one finished forward has its version made champion."""

    def fix(intent: Intent, new: bool) -> str:
        from models.registry import champion
        from tasks.release import current_champion

        name, version, before = intent.model, intent.model_version, intent.champion_before
        now = current_champion(settings, name)
        if new and now != version:
            champion.promote(settings, name, version, actor=audit.default_actor(settings),
                             reason=f"release {intent.release} serves it (reconciled)")
            return f"champion of {name} v{now} -> v{version}: the new version serves"
        if new or now != version or version == before:
            return ""
        changes = champion.history(settings.mlflow_uri, name)
        if not changes or changes[-1].to_version != version:
            return (f"champion of {name} is v{version} but its last move is not this "
                    f"release's: left as it is (`suite model history {name}`)")
        champion.undo(settings, name, changes[-1], actor=audit.default_actor(settings),
                      reason=f"release {intent.release} was rolled back (reconciled)")
        return f"champion of {name} v{version} -> v{before}: the release's move is undone"

    return fix


def _champion(fix: ChampionFix, intent: Intent, new: bool) -> tuple[str, bool]:
    """(what was done, whether the champion agrees now); a failure keeps the intent so that
    the next reconciliation (``suite up``, the next release) tries again."""
    if not intent.model or not intent.model_version:
        return "", True
    try:
        return fix(intent, new), True
    except Exception as exc:  # the traffic is rolled back; the champion is retried later
        return (f"the champion of {intent.model} could not be made to agree "
                f"({type(exc).__name__}: {exc}); the next `suite up` or release of the "
                f"service tries again")[:500], False


def service_lock(settings: Settings, service: str) -> AbstractContextManager[None]:
    """One reconciler per service at a time (hook, automation, `suite up`, next release)."""
    return exclusive(settings.dir("releases", "locks", f"{service}.lock"))


def _heal_stable(target: Target, service: str) -> None:
    """Stable replicas that are gone (killed, reaped after a crash) are started again."""
    state = target.state(service)
    if state.stable is not None and any(p.startswith("stable ")
                                        for p in target.problems(service)):
        target.reconcile(state.stable.workload, Role.STABLE)


def reconcile(settings: Settings, service: str, why: str, dead_run: str = "", *,
              target: Target | None = None, read_run: RunReader | None = None,
              alive: Callable[[Intent], bool | None] = process_alive,
              free_slot: bool = True, check_process: bool = False,
              champion: ChampionFix | None = None) -> Reconciled | None:
    """Return ``service`` to a consistent state if a release of it is unfinished.

    ``dead_run``: the caller knows this run ended (a hook or the automation): it is reconciled
    without asking whether it still runs, and only if the unfinished release is that run's.
    ``free_slot``: also free the dead run's release slot (not when the caller is the next
    release, which holds it). ``check_process``: even with ``dead_run``, leave a release whose
    flow-run process still runs (the automation: Prefect's Crashed may come from a heartbeat
    that was only late). ``champion``: how the release's champion move is made to agree
    with what serves (default :func:`champion_follows`). None when there was nothing to do.
    """
    releases = Releases(settings)
    with service_lock(settings, service):
        store = releases.targets()
        intent = store.load(service).release
        if intent is None or (dead_run and intent.flow_run_id != dead_run):
            return None
        if dead_run and check_process and alive(intent) is True:
            # marked Crashed (a late heartbeat?) while its process still works: not a crash
            print(f"run {dead_run} is marked ended but its process (pid {intent.pid}) still "
                  f"runs the release: not rolled back")
            return None
        if not dead_run:
            gone = run_gone(intent, read_run or prefect_run_state(settings), alive)
            if not gone:
                return None
            why = f"{why}: {gone}"
        if target is None:
            from tasks.targets.local import LocalTarget

            target = LocalTarget(settings)
        before = target.state(service)
        outcome = "rolled_back"
        if before.canary or before.preview or before.previous:
            target.rollback(service)
        elif before.stable is not None and before.stable.workload.release == intent.release:
            # promoted (or a rolling update) before the run ended: finish it forward
            outcome = "promoted"
            target.reconcile(before.stable.workload, Role.STABLE)
        # replicas the dead run started but never saved (it died between the two): none is
        # routed; removed so that nothing unjudged is left running
        swept = target.sweep(service)
        _heal_stable(target, service)
        after = store.load(service)
        new = after.stable is not None and after.stable.workload.release == intent.release
        moved, agrees = _champion(champion or champion_follows(settings), intent, new)
        active = releases.active(service)
        if active is not None and active.release == intent.release and active.phase != "ended":
            releases.update(service, phase="ended", outcome=outcome, reason=why[:500])
        after = store.load(service)
        if agrees and after.release is not None:
            store.save(replace(after, release=None))
        elif not agrees:  # unfinished until its champion agrees too
            store.save(replace(after, release=replace(intent, phase="ended")))
        if read_run is None:  # a real platform (not a unit test's fakes)
            if not dead_run:  # a hook's run ends Crashed/Cancelled by itself
                mark_crashed(settings, intent.flow_run_id, why)
            if free_slot:
                free_release_slot(settings, service, intent.slot_lease)
        stable = after.stable.workload.version if after.stable else "(none)"
        done = Reconciled(service, intent.release, intent.flow_run_id, why, outcome, stable,
                          moved)
        audit.append(settings, actor=audit.default_actor(settings), action="release.reconciled",
                     subject=f"{intent.release} run {intent.flow_run_id}",
                     inputs={"service": service, "why": why, "strategy": intent.strategy,
                             "phase": intent.phase, "stable": stable,
                             "started": intent.started, "champion": moved,
                             "removed_unsaved": swept},
                     outcome=outcome)
    announce(settings, intent, done)
    return done


def announce(settings: Settings, intent: Intent, done: Reconciled) -> int:
    """The release's own notifications learn how it ended: its run died before it could say
    so itself (as Flagger alerts on a rollback whatever caused it). Never raises; returns how
    many deliveries succeeded."""
    from tasks import notify

    if not intent.notify:
        return 0
    run = (f"{settings.url('prefect')}/runs/flow-run/{intent.flow_run_id}"
           if intent.flow_run_id else "")
    notice = notify.Notice(notify.outcome_event(done.outcome), done.service, done.release,
                           done.outcome, f"reconciled: {done.why} (stable: {done.stable})"[:500],
                           run)
    try:
        sent = notify.notify(settings, intent.notify, notice)
    except Exception:  # a notification never undoes a reconciliation
        return 0
    return sum(d.ok for d in sent)


def unfinished(settings: Settings) -> list[tuple[str, Intent]]:
    """Every service whose target state names a release in progress."""
    store = Releases(settings).targets()
    found: list[tuple[str, Intent]] = []
    for service in store.services():
        try:
            intent = store.load(service).release
        except SuiteError:
            continue
        if intent is not None:
            found.append((service, intent))
    return found


def reconcile_all(settings: Settings, why: str) -> list[Reconciled]:
    """:func:`reconcile` every service with an unfinished release (``suite up``)."""
    done: list[Reconciled] = []
    for service, _ in unfinished(settings):
        result = reconcile(settings, service, why)
        if result is not None:
            done.append(result)
    return done


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile_task(settings: Settings, service: str, why: str, dead_run: str = "",
                   free_slot: bool = True, check_process: bool = False) -> Reconciled | None:
    return reconcile(settings, service, why, dead_run, free_slot=free_slot,
                     check_process=check_process)


def on_release_ended(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_crashed`` / ``on_cancellation`` hook of the release flow. Prefect's runner calls it
    in the worker once the flow-run process is gone, so nothing races the rollback."""
    from suite import settings as settings_mod

    service = str((flow_run.parameters or {}).get("service", ""))
    if not service:
        return
    why = f"run {flow_run.name} is {state.name}"
    if state.message:
        why += f" ({str(state.message)[:200]})"
    began = time.monotonic()
    done = reconcile(settings_mod.load(), service, why, dead_run=str(flow_run.id))
    if done is not None:
        print(f"reconciled in {time.monotonic() - began:.1f}s: {done.line()}")


def _wait(check: Callable[[], bool], seconds: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def cancel_run(settings: Settings, run_id: str, why: str) -> None:
    """Ask Prefect to cancel ``run_id``: its worker kills the process and runs the release
    flow's ``on_cancellation`` hook (which reconciles)."""
    resp = prefect_http.request(settings.prefect_api_url, "POST", f"/flow_runs/{run_id}/set_state",
                                json={"state": {"type": "CANCELLING", "name": "Cancelling",
                                                "message": why[:1000]}, "force": True})
    if resp.status_code >= 300:
        raise SuiteError(f"Prefect did not cancel run {run_id} (HTTP {resp.status_code}: "
                         f"{resp.text[:300]}); stop it in the UI, then `suite down` again")


def abort_release(settings: Settings, service: str, actor: str, why: str,
                  abort_wait_s: float = 30.0, cancel_wait_s: float = 90.0) -> Reconciled | str:
    """Roll back the release of ``service`` that is in progress, and wait until it is.

    First the ``abort`` command (the flow rolls back itself between steps, during pauses and
    analysis); if the run does not end within ``abort_wait_s`` (e.g. it is still building),
    Prefect cancels it and the reconciler rolls it back. The reconciliation, or a line saying
    how the release ended by itself."""
    from tasks.control import Command

    releases = Releases(settings)
    store = releases.targets()
    intent = store.load(service).release
    if intent is None:
        return f"{service}: no release in progress"

    def ended() -> bool:
        current = store.load(service).release
        return current is None or current.release != intent.release

    try:
        releases.send(service, Command.ABORT, actor, why)
    except SuiteError:
        pass  # its Active record ended or is missing: cancel it instead
    if _wait(ended, abort_wait_s):
        active = releases.active(service)
        how = active.outcome if active and active.release == intent.release else "ended"
        return f"{service}: release {intent.release} aborted by its run ({how})"
    if intent.flow_run_id:
        cancel_run(settings, intent.flow_run_id, why)
    _wait(lambda: ended() or process_alive(intent) is False, cancel_wait_s)
    if ended():
        return f"{service}: release {intent.release} cancelled and rolled back by its hook"
    done = reconcile(settings, service, why, dead_run=intent.flow_run_id) if (
        process_alive(intent) is not True) else None
    if done is None:
        raise SuiteError(f"the release {intent.release} of {service} (run "
                         f"{intent.flow_run_id}, pid {intent.pid}) did not stop within "
                         f"{abort_wait_s + cancel_wait_s:.0f} s; stop it in the Prefect UI, "
                         f"then `suite down` again")
    return done
