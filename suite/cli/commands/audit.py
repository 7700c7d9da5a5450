"""`suite audit verify | show`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import datetime

from suite import audit
from suite import settings as settings_mod
from suite.errors import ConfigError


def cmd_verify(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    report = audit.verify(settings)
    models = None
    if report.ok and not args.no_models:
        # the trail verified: now hold MLflow's aliases to it (moves made behind its back)
        from models.registry import aliases

        models = aliases.check(audit.trail(settings).records(), settings.mlflow_uri)
    if args.json:
        extra = {} if models is None else {"models": {
            "ok": models.ok, "checked": models.models, "untracked": list(models.untracked),
            "mismatches": [{**asdict(d), "summary": str(d)} for d in models.drifts]}}
        print(json.dumps({**asdict(report), "summary": str(report), **extra}))
    else:
        print(report)
        for line in models.lines() if models is not None else ():
            print(line)
    return 0 if report.ok and (models is None or models.ok) else 1


def cmd_show(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError as exc:
            raise ConfigError(
                f"--since {args.since!r} is not an ISO date/time (e.g. 2026-11-29T10:00)"
            ) from exc
    records = audit.trail(settings_mod.load()).since(since)
    if args.limit:
        records = records[-args.limit:]
    for rec in records:
        if args.json:
            print(json.dumps(asdict(rec)))
        else:
            print(f"{rec.seq:>5} {rec.time[:23]} {rec.actor:<12} {rec.action:<20} "
                  f"{rec.outcome:<8} {rec.subject}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    aud = sub.add_parser("audit", help="the signed, hash-chained audit trail")
    asub = aud.add_subparsers(dest="audit_command", required=True)
    ver = asub.add_parser("verify", help="check chain, signatures and the HEAD counter in Vault; "
                                         "names the first bad record; then that MLflow's "
                                         "model aliases are where the trail's moves left them")
    ver.add_argument("--json", action="store_true")
    ver.add_argument("--no-models", action="store_true",
                     help="skip comparing MLflow's model aliases with the trail's last moves")
    ver.set_defaults(func=cmd_verify)
    show = asub.add_parser("show", help="list records")
    show.add_argument("--since", help="ISO date/time")
    show.add_argument("--limit", type=int, default=0)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
