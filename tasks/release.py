"""Release helpers the ``release`` flow wires together: stage timing, the audit trail, the model
champion, the environment check of the local target, the human approval on MARGINAL, and the
end of a release: :func:`settle` (what serves and the champion agree after any failure) and
:func:`finalize_release` (past the point of no return, a note and never the outcome)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from prefect.states import Completed, State

from suite import audit
from suite.errors import ConfigError, ServiceUnavailable
from suite.people import Checked
from suite.platform import manager
from suite.settings import Settings
from tasks.report import ReleaseRecord, StageRecord
from tasks.targets.base import Deployment
from tasks.targets.state import TargetState

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
               outcome: str = "ok", actor: str | None = None) -> int:
    """One audit record; its actor is this process's authenticated identity (the worker's
    AppRole, ``approle:suite-worker``) unless a verified identity is given (an approver)."""
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
                       actor: str | None = None) -> str | None:
    """``champion`` := ``version`` (no-op when it already is); returns the previous champion."""
    from models.registry import champion

    before = current_champion(settings, name)
    if before == version:
        return before
    champion.promote(settings, name, version, actor=actor or audit.default_actor(settings),
                     reason=reason)
    return before


@task(name="rollback-model", cache_policy=NO_CACHE)
def rollback_model_task(settings: Settings, name: str, reason: str, actor: str) -> str:
    """``champion`` goes back to the version it replaced; returns "vA -> vB"."""
    from models.registry import champion

    change = champion.rollback(settings, name, actor=actor, reason=reason)
    return f"v{change.from_version} -> v{change.to_version}"


class Approval(RunInput):
    """What a human answers when a canary step is MARGINAL (form in the Prefect UI). The
    approver is never typed: ``identity_token`` is the output of `suite approve-token` (a JWT
    Vault signs for a logged-in approver), and the flow records the identity it names."""

    decision: Literal["approve", "rollback"]
    identity_token: str
    reason: str


@dataclass(frozen=True)
class Answer:
    """An approval whose identity token Vault accepted: ``approver`` is that identity."""

    decision: str
    approver: str
    reason: str


def pause_for_approval(key: str, timeout_s: int) -> Approval | None:
    """Prefect's pause with typed input; ``None`` when the wait timed out."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    try:
        answer = pause_flow_run(wait_for_input=Approval, timeout=timeout_s, key=key)
    except FlowPauseTimeout:
        return None
    return answer


def ask_approval(rec: ReleaseRecord, step: int, timeout_s: int,
                 verify: Callable[[str | None], Checked],
                 refused: Callable[[str], None] = lambda reason: None,
                 pause: Callable[[str, int], Approval | None] = pause_for_approval,
                 clock: Callable[[], float] = time.monotonic) -> Answer | None:
    """Pause the run until an approver answers; ``None`` when the wait timed out. An answer
    whose identity token Vault does not accept (missing, forged, expired, not an approver's)
    is refused (``refused`` gets the reason) and the run waits again for the time left."""
    deadline, attempt = clock() + timeout_s, 0
    while (left := round(deadline - clock())) >= 1:
        key = f"approval-{rec.release}-{step}" + (f"-{attempt}" if attempt else "")
        got = pause(key, left)
        if got is None:
            return None
        checked = verify(got.identity_token)
        if checked.approver is not None:
            return Answer(got.decision, checked.approver, got.reason)
        refused(checked.reason)
        attempt += 1
    return None


def approval_checker(settings: Settings, claim: bool = True) -> Callable[[str | None], Checked]:
    """Vault (the worker's identity) checks an approval token (suite.people.verify_approval)
    and, with ``claim``, spends its one use (suite.people.claim_approval): a token accepted
    once is refused as already used after. ``claim=False`` only looks (a pending abort seen
    before the command that acts on it is consumed)."""
    from suite import people, vault
    from suite.errors import SuiteError

    def check(token: str | None) -> Checked:
        try:
            client = vault.client(settings)
        except SuiteError as exc:
            return Checked(None, f"Vault cannot be asked about the approval token: {exc}")
        checked = people.verify_approval(client, token)
        if not claim or not checked.ok or token is None:
            return checked
        return people.claim_approval(client, token, checked)

    return check


@task(name="check-override", cache_policy=NO_CACHE)
def check_override_task(settings: Settings, what: str, identity_token: str,
                        how: str = "`suite release NAME --strategy KIND` as an approver "
                                   "passes the token") -> str:
    """A run parameter that overrides the manifest (``what``), or a manual rollback, needs an
    approver's identity token (issue 13 items 2 and 4); the approver it names, or a ConfigError
    with the reason."""
    checked = approval_checker(settings)(identity_token)
    if checked.approver is None:
        raise ConfigError(f"{what} needs an approver: {checked.reason} ({how})")
    return checked.approver


# -- the end of a release: what serves and the champion agree, whatever failed ---------------

class Serving(Protocol):
    """What :func:`settle` needs of the target (the local controller has both)."""

    def state(self, service: str) -> TargetState: ...

    def rollback(self, service: str) -> Deployment: ...


@dataclass(frozen=True)
class ChampionSide:
    """The release's model: ``version`` becomes champion with it, ``before`` was champion."""

    version: str
    before: str | None
    current: Callable[[], str | None]
    forward: Callable[[], None]  # champion := version
    back: Callable[[], None]  # undo this release's move (champion := before)


@dataclass(frozen=True)
class Settled:
    serving: Literal["new", "old", "unknown"]
    notes: tuple[str, ...] = ()


def settle(target: Serving, service: str, release: str, champion: ChampionSide | None = None,
           *, attempts: int = 3, sleep: Callable[[float], None] = time.sleep) -> Settled:
    """After a release stopped short (an exception, a rollback): make it consistent.

    What this release left unjudged or half-promoted (its canary or preview, or the old stable
    it kept as ``previous`` until finalize) is rolled back — the transaction's hooks normally
    did it already; they log and swallow their own failures, so this looks again. Then the
    champion follows what serves: this release's version if it is all of stable (a rolling
    update or a promotion past its point of no return: completed forward), else its move is
    undone. Retried ``attempts`` times; ``unknown`` when it never got a consistent answer."""
    notes: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            state = target.state(service)
            mine = [t for t in (state.canary, state.preview) if t and t.workload.release == release]
            kept = state.previous is not None and state.stable is not None \
                and state.stable.workload.release == release
            if mine or kept:
                target.rollback(service)
                notes.append(f"{service}: the release's {'previous stable' if kept else 'canary'}"
                             f" was still there: rolled back")
                state = target.state(service)
            new = state.stable is not None and state.stable.workload.release == release
            if champion is not None:
                now = champion.current()
                if new and now != champion.version:
                    champion.forward()
                    notes.append(f"champion v{now} -> v{champion.version}: the new version "
                                 f"serves, its model is champion")
                elif not new and now == champion.version != champion.before:
                    champion.back()
                    notes.append(f"champion v{champion.version} -> v{champion.before}: the "
                                 f"release did not complete, its champion move is undone")
            return Settled("new" if new else "old", tuple(notes))
        except Exception as exc:  # each try is reported; the next one may succeed
            notes.append(f"settling {service} (try {attempt}/{attempts}) failed: "
                         f"{type(exc).__name__}: {exc}"[:400])
            if attempt < attempts:
                sleep(2.0 * attempt)
    return Settled("unknown", tuple(notes))


def champion_side(settings: Settings, name: str, version: str, before: str | None,
                  release: str) -> ChampionSide:
    from models.registry import champion

    def forward() -> None:
        champion.promote(settings, name, version, actor=audit.default_actor(settings),
                         reason=f"release {release} serves it (completed after an error)")

    def back() -> None:
        changes = champion.history(settings.mlflow_uri, name)
        if changes and changes[-1].to_version == version:
            champion.undo(settings, name, changes[-1], actor=audit.default_actor(settings),
                          reason=f"release {release} did not complete")

    return ChampionSide(version, before, lambda: current_champion(settings, name), forward,
                        back)


@task(name="settle", cache_policy=NO_CACHE)
def settle_task(settings: Settings, target: str, service: str, release: str,
                model: tuple[str, str, str | None] | None = None) -> Settled:
    """:func:`settle` on the real target; ``model``: (name, version, champion before)."""
    from tasks.targets import get_target

    side = champion_side(settings, model[0], model[1], model[2], release) if model else None
    deployed = cast(Serving, get_target(target, settings))
    return settle(deployed, service, release, side)


def finalize_release(target: str, service: str, settings: Settings,
                     attempts: int = 3, sleep: Callable[[float], None] = time.sleep) -> str:
    """Remove what was kept for an instant rollback; past the point of no return a failure
    here is a note (""= done), never the outcome: the new version serves either way, and the
    next transition (or the reconciler) removes the leftovers."""
    from tasks.deploy import finalize_task

    error = ""
    for attempt in range(1, attempts + 1):
        try:
            finalize_task(target, service, settings)
            return ""
        except Exception as exc:  # retried, then reported
            error = f"{type(exc).__name__}: {exc}"[:300]
            if attempt < attempts:
                sleep(2.0 * attempt)
    return (f"finalize failed {attempts} times ({error}): the old replicas of {service} still "
            f"run unrouted; the next release removes them")


#: the name of a rolled-back release's final state (type COMPLETED; docs/reliability.md)
ROLLED_BACK = "RolledBack"
#: what the release flow returns: its summary, or for a rollback a state named for it
Outcome = dict[str, object] | State[dict[str, object]]


def outcome_state(summary: dict[str, object], outcome: str, reason: str) -> Outcome:
    """The run's final state: a rollback is COMPLETED named ``RolledBack`` — the run did its
    job (the new version was judged and refused, stable serves), so Prefect's failure
    automations, retries and the demo's run checks do not take it for a broken platform, while
    the Runs page names it; a promotion is the summary itself (Completed); a failure raises
    (Failed) before it gets here."""
    if outcome == "rolled_back":
        return Completed(name=ROLLED_BACK, message=reason[:500], data=summary)
    return summary
