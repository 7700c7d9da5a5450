"""The model aliases as the audit trail says they are, and where MLflow disagrees (issue 13,
item 7: an alias moved in MLflow behind the suite's back).

Every move the suite makes is a signed audit record: ``model.promote`` / ``model.rollback`` with
subject ``models:/NAME/VERSION@champion`` (VERSION became champion), ``model.undo`` with
``models:/NAME@champion`` (the champion removed), and ``model.register`` with
``models:/NAME/VERSION`` (VERSION became challenger; a promote of the challenger removes that
alias). Replaying them gives what each alias must be now. The ``champion.history.*`` tags are
not trusted for this: anyone who can write to MLflow can write them. Records written before the
version was in the subject (``models:/NAME@champion``) are resolved through the history tag whose
content has the record's inputs digest (the digest is signed, so a forged tag matches nothing).

Pure functions over records and the aliases read from MLflow (:mod:`models.registry.aliases`
reads them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from models.registry.store import CHALLENGER, CHAMPION
from suite.audit.record import AuditRecord, digest

MOVES = ("model.promote", "model.rollback", "model.undo")
VERSIONED = re.compile(r"^(?P<name>.+)/(?P<version>\d+)$")
UNRESOLVED = "?"  # a pre-version record whose history tag is gone or was changed


class TagChange(Protocol):
    """A ``champion.history.*`` tag's move (:class:`~models.registry.champion.ChampionChange`)."""

    @property
    def from_version(self) -> str | None: ...
    @property
    def to_version(self) -> str: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class Move:
    """One audited move of an alias: ``to`` None = the alias was removed."""

    seq: int
    time: str
    actor: str
    action: str
    alias: str
    to: str | None


@dataclass
class Expected:
    """What the trail's last records say a model's aliases are."""

    champion: str | None = None
    challenger: str | None = None
    champion_seq: int = 0
    challenger_seq: int = 0
    moves: list[Move] = field(default_factory=list)


@dataclass(frozen=True)
class Drift:
    name: str
    alias: str
    mlflow: str | None
    audited: str | None
    seq: int

    def __str__(self) -> str:
        def show(v: str | None) -> str:
            return "unset" if v is None else ("unknown" if v == UNRESOLVED else f"v{v}")

        if self.audited == UNRESOLVED:
            return (f"{self.alias} of {self.name} is {show(self.mlflow)} in MLflow, but the audit "
                    f"trail's last move (record {self.seq}) matches no champion.history tag: "
                    f"the tags were changed outside the suite")
        last = (f"the audit trail's last move (record {self.seq}) set {show(self.audited)}"
                if self.seq else "the audit trail never set it")
        return (f"{self.alias} of {self.name} is {show(self.mlflow)} in MLflow, but {last}; "
                f"moved outside the suite")


def _champion_target(rec: AuditRecord, rest: str,
                     tags: Mapping[str, Sequence[TagChange]]) -> tuple[str, str | None]:
    """(model name, version made champion or None) of a champion record."""
    m = VERSIONED.match(rest)
    if m:
        return m["name"], m["version"]
    if rec.action == "model.undo":  # the champion was removed
        return rest, None
    for change in tags.get(rest, ()):  # a record from before versions were in the subject
        if digest({"from": change.from_version, "to": change.to_version,
                   "reason": change.reason}) == rec.inputs_digest:
            return rest, change.to_version
    return rest, UNRESOLVED


def expected(records: Iterable[AuditRecord],
             tags: Mapping[str, Sequence[TagChange]] | None = None) -> dict[str, Expected]:
    """Every model the trail has moved or registered, and its aliases after the last record.
    ``tags``: each model's history tags, only to resolve records without a version."""
    out: dict[str, Expected] = {}
    for rec in records:
        if rec.outcome != "ok" or not rec.subject.startswith("models:/"):
            continue
        rest = rec.subject[len("models:/"):]
        if rec.action in MOVES and rest.endswith(f"@{CHAMPION}"):
            name, to = _champion_target(rec, rest[:-len(CHAMPION) - 1], tags or {})
            exp = out.setdefault(name, Expected())
            exp.champion, exp.champion_seq = to, rec.seq
            exp.moves.append(Move(rec.seq, rec.time, rec.actor, rec.action, CHAMPION, to))
            if rec.action == "model.promote" and to is not None and exp.challenger == to:
                exp.challenger, exp.challenger_seq = None, rec.seq
        elif rec.action == "model.register" and (m := VERSIONED.match(rest)):
            exp = out.setdefault(m["name"], Expected())
            exp.challenger, exp.challenger_seq = m["version"], rec.seq
            exp.moves.append(Move(rec.seq, rec.time, rec.actor, rec.action, CHALLENGER,
                                  m["version"]))
    return out


def drift(want: Mapping[str, Expected],
          have: Mapping[str, Mapping[str, str]]) -> list[Drift]:
    """Each alias where MLflow (``have``: model -> alias -> version; a model missing from it has
    no aliases) differs from the trail, for the models the trail knows."""
    found: list[Drift] = []
    for name, exp in sorted(want.items()):
        current = have.get(name, {})
        for alias, audited, seq in ((CHAMPION, exp.champion, exp.champion_seq),
                                    (CHALLENGER, exp.challenger, exp.challenger_seq)):
            if current.get(alias) != audited:
                found.append(Drift(name, alias, current.get(alias), audited, seq))
    return found


def untracked(want: Mapping[str, Expected], have: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Models with a champion or challenger alias the trail never mentions (the suite did not
    make them: set in MLflow directly, or by another platform's trail)."""
    return sorted(n for n, a in have.items()
                  if n not in want and (CHAMPION in a or CHALLENGER in a))


def audited_lineage(exp: Expected) -> list[str]:
    """The champion stack after the trail's moves (:func:`~models.registry.champion.lineage`
    of the audited moves: an undo to nothing pops the promote it undoes)."""
    stack: list[str] = []
    for mv in exp.moves:
        if mv.alias != CHAMPION:
            continue
        if mv.to is None:
            if stack:
                stack.pop()
        elif mv.action == "model.promote":
            stack.append(mv.to)
        else:  # rollback, or an undo back to the previous champion
            if stack:
                stack.pop()
            if not stack or stack[-1] != mv.to:
                stack.append(mv.to)
    return stack


def lineage_mismatch(name: str, tag_stack: Sequence[str], exp: Expected) -> str | None:
    """Why the history tags' lineage (``tag_stack``) is not the trail's, or None."""
    trail_stack = audited_lineage(exp)
    if list(tag_stack) == trail_stack:
        return None
    return (f"the champion.history tags of {name} (lineage "
            f"{', '.join('v' + v for v in tag_stack) or 'none'}) disagree with the audit trail "
            f"(lineage {', '.join('v' + v for v in trail_stack) or 'none'}): the tags were "
            f"changed outside the suite")


def needs_tags(records: Iterable[AuditRecord]) -> set[str]:
    """Models with champion records from before versions were in the subject."""
    names: set[str] = set()
    for rec in records:
        rest = rec.subject[len("models:/"):] if rec.subject.startswith("models:/") else ""
        if rec.action in ("model.promote", "model.rollback") and rest.endswith(f"@{CHAMPION}"):
            base = rest[:-len(CHAMPION) - 1]
            if not VERSIONED.match(base):
                names.add(base)
    return names


@dataclass(frozen=True)
class AliasReport:
    models: int  # models the trail knows
    drifts: tuple[Drift, ...]
    untracked: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.drifts

    def lines(self) -> list[str]:
        if self.ok:
            out = [f"model aliases: OK ({self.models} model(s) match the audit trail)"]
        else:
            out = [f"model aliases: MISMATCH ({len(self.drifts)}):"]
            out += [f"  {d}" for d in self.drifts]
        if self.untracked:
            out.append(f"  not in the audit trail (aliases set outside the suite, not checked): "
                       f"{', '.join(self.untracked)}")
        return out
