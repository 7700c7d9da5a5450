"""`suite model promote | rollback | history NAME` — the ``champion`` alias in the MLflow registry.

Every move is recorded in the registry (history tags, version tags) and in the audit trail.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from suite import audit
from suite import settings as settings_mod

if TYPE_CHECKING:
    from models.registry import ChampionChange


def _print_change(prefix: str, name: str, change: ChampionChange) -> None:
    before = f"v{change.from_version}" if change.from_version else "none"
    print(f"{prefix} {name}: champion {before} -> v{change.to_version} "
          f"(by {change.actor}: {change.reason})")


def cmd_promote(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_mod.load()
    change = registry.promote(settings, args.name, args.version,
                              actor=audit.default_actor(settings), reason=args.reason)
    _print_change("promoted", args.name, change)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_mod.load()
    change = registry.rollback(settings, args.name, actor=audit.default_actor(settings),
                               reason=args.reason)
    _print_change("rolled back", args.name, change)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_mod.load()
    changes = registry.history(settings.mlflow_uri, args.name)
    problems = _against_trail(settings, args.name, changes)
    if args.json:
        print(json.dumps([asdict(c) for c in changes], indent=2))
    elif not changes:
        print(f"{args.name}: no champion changes recorded")
    else:
        print(f"{'TIME':<25} {'ACTION':<9} {'CHANGE':<14} {'ACTOR':<14} REASON")
        for c in changes:
            move = f"{'v' + c.from_version if c.from_version else 'none'} -> v{c.to_version}"
            print(f"{c.time:<25} {c.action:<9} {move:<14} {c.actor:<14} {c.reason}")
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _against_trail(settings: settings_mod.Settings, name: str,
                   changes: list[ChampionChange]) -> list[str]:
    """What the audit trail says that the registry does not: an alias moved in MLflow directly,
    or history tags that tell another story than the signed records (they are writable by
    anyone with MLflow access)."""
    from models.registry import aliases, audited
    from models.registry.champion import lineage
    from suite import audit

    records = audit.trail(settings).records()
    tags = {name: changes} if name in audited.needs_tags(records) else {}
    exp = audited.expected(records, tags).get(name)
    have = aliases.aliases(settings.mlflow_uri).get(name, {})
    if exp is None:
        return [f"{name} has aliases {have} but the audit trail records no move of it: "
                f"set outside the suite"] if have else []
    out = [str(d) for d in audited.drift({name: exp}, {name: have})]
    mismatch = audited.lineage_mismatch(name, lineage(changes), exp)
    if mismatch:
        out.append(mismatch)
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    model = sub.add_parser("model", help="model registry: promote, roll back, champion history")
    msub = model.add_subparsers(dest="model_command", required=True)

    promote = msub.add_parser("promote", help="make a version (default: the challenger) champion")
    promote.add_argument("name", help="registered model name, e.g. digits")
    promote.add_argument("--version", help="version to promote (default: alias challenger)")
    promote.add_argument("--reason", default="", help="why (kept in history and audit trail)")
    promote.set_defaults(func=cmd_promote)

    rollback = msub.add_parser("rollback", help="give champion back to the version it replaced")
    rollback.add_argument("name")
    rollback.add_argument("--reason", default="")
    rollback.set_defaults(func=cmd_rollback)

    hist = msub.add_parser("history", help="every champion change with time, actor and reason")
    hist.add_argument("name")
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=cmd_history)
