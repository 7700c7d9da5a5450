"""Moving the ``champion`` alias: promote, roll back, and the history of every move.

The history lives in the registry itself, one registered-model tag per move
(``champion.history.<ns timestamp>`` = JSON of :class:`ChampionChange`), so the MLflow UI shows it
and no second store can disagree with the alias. Each move also tags the new champion version with
the one it replaced and appends a signed audit event; if anything fails before the audit event
is written (the audit itself, MLflow, an interrupt: any exception) the move is undone (an
unaudited promotion is not allowed to stand). :func:`undo` compensates a promote that a release
could not complete.

Rollback follows the lineage: promotions push a version, rollbacks pop one, so promoting v1, v2,
v3 and rolling back twice gives v1 again, and a third rollback is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient

from models.registry import audited
from models.registry.store import CHALLENGER, CHAMPION, client, get_version, version_by_alias
from suite import audit
from suite.errors import ConfigError
from suite.settings import Settings

HISTORY_PREFIX = "champion.history."
MAX_REASON = 500


@dataclass(frozen=True)
class ChampionChange:
    time: str
    action: str  # "promote" | "rollback"
    from_version: str | None
    to_version: str
    actor: str
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ChampionChange:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def lineage(changes: Sequence[ChampionChange]) -> list[str]:
    """Champion versions still on the stack after replaying ``changes`` (oldest first)."""
    stack: list[str] = []
    for change in changes:
        if change.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != change.to_version:
                stack.append(change.to_version)
        else:
            stack.append(change.to_version)
    return stack


def history(tracking_uri: str, name: str) -> list[ChampionChange]:
    mc = client(tracking_uri)
    get_registered(mc, name)
    return _history(mc, name)


def get_registered(mc: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mc.get_registered_model(name)
    except MlflowException as exc:
        raise ConfigError(f"no registered model named {name!r} in MLflow "
                          "(train one with the `train` flow first)") from exc


def _history(mc: MlflowClient, name: str) -> list[ChampionChange]:
    tags = mc.get_registered_model(name).tags
    keys = sorted(k for k in tags if k.startswith(HISTORY_PREFIX))
    return [ChampionChange.from_json(tags[k]) for k in keys]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _move(
    settings: Settings, mc: MlflowClient, name: str, *, action: str, to_version: str,
    from_version: str | None, actor: str | None, reason: str,
) -> ChampionChange:
    actor = actor or audit.default_actor()
    change = ChampionChange(time=_now(), action=action, from_version=from_version,
                            to_version=to_version, actor=actor, reason=reason[:MAX_REASON])
    key = f"{HISTORY_PREFIX}{time.time_ns():020d}"
    mc.set_registered_model_tag(name, key, change.to_json())
    try:
        mc.set_registered_model_alias(name, CHAMPION, to_version)
        for tag, value in {
            "champion.previous": from_version or "none",
            "champion.since": change.time,
            "champion.by": actor,
            "champion.reason": change.reason,
        }.items():
            mc.set_model_version_tag(name, to_version, tag, value)
        # the version in the subject: the trail alone says what the alias must be now
        # (models.registry.audited), whatever the history tags say
        audit.append(settings, actor=actor, action=f"model.{action}",
                     subject=f"models:/{name}/{to_version}@{CHAMPION}",
                     inputs={"from": from_version, "to": to_version, "reason": change.reason})
    except BaseException as exc:
        # any failure (not only ours: MLflow, Vault, an interrupt) leaves the alias as it was
        _revert(mc, name, key, from_version, exc)
        raise
    return change


def _revert(mc: MlflowClient, name: str, key: str, from_version: str | None,
           cause: BaseException) -> None:
    """Put the alias back and drop the move's history entry; a failing revert is added to
    ``cause`` (the error the caller raises) rather than hiding it."""
    try:
        if from_version is None:
            mc.delete_registered_model_alias(name, CHAMPION)
        else:
            mc.set_registered_model_alias(name, CHAMPION, from_version)
        mc.delete_registered_model_tag(name, key)
    except Exception as exc:  # reported on the original error
        cause.add_note(f"undoing the {CHAMPION} move of {name!r} failed too: "
                       f"{type(exc).__name__}: {exc}; check `suite model history {name}`")


def undo(
    settings: Settings, name: str, change: ChampionChange, *, actor: str | None = None,
    reason: str = "",
) -> ChampionChange | None:
    """Compensate ``change`` (a promote of this release that must not stand): the alias goes
    back to ``change.from_version``. A no-op (None) when the alias is no longer
    ``change.to_version`` (someone else moved it since). With no previous champion the alias is
    removed and the promote's history entry dropped, as if it never happened; the audit record
    ``model.undo`` says so."""
    mc = client(settings.mlflow_uri)
    current = version_by_alias(mc, name, CHAMPION)
    if current is None or str(current.version) != change.to_version:
        return None
    if change.from_version is not None:
        return _move(settings, mc, name, action="rollback", to_version=change.from_version,
                     from_version=change.to_version, actor=actor,
                     reason=reason or "promotion undone")
    mc.delete_registered_model_alias(name, CHAMPION)
    for key, value in mc.get_registered_model(name).tags.items():
        if key.startswith(HISTORY_PREFIX) and ChampionChange.from_json(value) == change:
            mc.delete_registered_model_tag(name, key)
    audit.append(settings, actor=actor or audit.default_actor(), action="model.undo",
                 subject=f"models:/{name}@{CHAMPION}",
                 inputs={"from": change.to_version, "to": None,
                         "reason": (reason or "promotion undone")[:MAX_REASON]})
    return change


def promote(
    settings: Settings, name: str, version: str | None = None, *, actor: str | None = None,
    reason: str = "",
) -> ChampionChange:
    """Make ``version`` (default: the ``challenger``) the champion."""
    mc = client(settings.mlflow_uri)
    get_registered(mc, name)
    if version is None:
        challenger = version_by_alias(mc, name, CHALLENGER)
        if challenger is None:
            raise ConfigError(f"model {name!r} has no {CHALLENGER!r} alias to promote "
                              "(train a new version or pass --version)")
        version = str(challenger.version)
    get_version(mc, name, version)
    current = version_by_alias(mc, name, CHAMPION)
    previous = str(current.version) if current is not None else None
    if previous == version:
        raise ConfigError(f"model {name!r} version {version} is already {CHAMPION}")
    change = _move(settings, mc, name, action="promote", to_version=version,
                   from_version=previous, actor=actor, reason=reason or "promoted")
    challenger = version_by_alias(mc, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        mc.delete_registered_model_alias(name, CHALLENGER)
    return change


def _check_against_trail(settings: Settings, name: str, current: str,
                         changes: Sequence[ChampionChange]) -> None:
    """Refuse to roll back by history tags the audit trail does not back: the tags are
    writable by anyone with MLflow access, the trail is signed."""
    records = audit.trail(settings).records()
    tags = {name: list(changes)} if name in audited.needs_tags(records) else {}
    exp = audited.expected(records, tags).get(name)
    if exp is None:
        raise ConfigError(f"the audit trail has no {CHAMPION} move of {name!r}: its history tags "
                          f"were not written by the suite; promote the wanted version "
                          f"explicitly with --version")
    if exp.champion != current:
        raise ConfigError(str(audited.Drift(name, CHAMPION, current, exp.champion,
                                            exp.champion_seq))
                          + "; promote the wanted version explicitly with --version")
    mismatch = audited.lineage_mismatch(name, lineage(changes), exp)
    if mismatch:
        raise ConfigError(f"{mismatch}; promote the wanted version explicitly with --version")


def rollback(
    settings: Settings, name: str, *, actor: str | None = None, reason: str = "",
) -> ChampionChange:
    """Give the champion alias back to the version it replaced."""
    mc = client(settings.mlflow_uri)
    get_registered(mc, name)
    current = version_by_alias(mc, name, CHAMPION)
    if current is None:
        raise ConfigError(f"model {name!r} has no {CHAMPION} to roll back")
    changes = _history(mc, name)
    stack = lineage(changes)
    if not stack or stack[-1] != str(current.version):
        raise ConfigError(
            f"{CHAMPION} of {name!r} is v{current.version} but the recorded history ends at "
            f"{'v' + stack[-1] if stack else 'nothing'}: the alias was moved outside "
            "`suite model promote`; promote the wanted version explicitly with --version"
        )
    _check_against_trail(settings, name, str(current.version), changes)
    if len(stack) < 2:
        raise ConfigError(f"model {name!r} has no previous {CHAMPION} to roll back to "
                          f"(v{current.version} is the first)")
    return _move(settings, mc, name, action="rollback", to_version=stack[-2],
                 from_version=str(current.version), actor=actor,
                 reason=reason or "rolled back")
