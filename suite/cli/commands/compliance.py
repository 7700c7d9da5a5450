"""`suite compliance report [--since DATE] [--until DATE] [--format md|html] [--json]`:
each control of the compliance map (policies/compliance.py) with the releases of the period and
their evidence from the audit trail, and the audit chain's verification at the end."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from suite import settings as settings_mod
from suite.audit.record import AuditRecord
from suite.errors import ConfigError, SuiteError


class _ReadOnly:
    """Reading records needs no signer (and no Vault); only verification does."""

    def sign(self, data: bytes) -> str:
        raise ConfigError("the compliance report never writes the audit trail")

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]:
        raise ConfigError("the compliance report verifies through suite.audit.verify")


def _date(flag: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {value!r} is not an ISO date/time "
                          f"(expected e.g. 2026-11-01 or 2026-11-01T10:00)") from exc


def audit_records(settings: settings_mod.Settings) -> list[AuditRecord]:
    from suite.audit.store import AuditTrail

    return AuditTrail(settings.dir("audit"), _ReadOnly()).records()


def _verify(settings: settings_mod.Settings) -> tuple[bool | None, str]:
    from suite import audit

    try:
        report = audit.verify(settings)
    except SuiteError as exc:  # Vault down or sealed: the report says so, it does not fail
        return None, f"could not run ({exc}); `suite up`, then `suite audit verify`"
    return report.ok, str(report)


def cmd_report(args: argparse.Namespace) -> int:
    from tasks import compliance

    since, until = _date("--since", args.since), _date("--until", args.until)
    settings = settings_mod.load()
    chain_ok, chain = _verify(settings)
    report = compliance.build(audit_records(settings), since, until, chain_ok, chain)
    if args.json:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    elif args.format == "html":
        text = compliance.to_html(report)
    else:
        text = compliance.markdown(report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(report.releases)} releases, audit chain "
              f"{'verified' if chain_ok else 'NOT verified'})")
    else:
        print(text, end="")
    return 1 if chain_ok is False else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("compliance", help="compliance evidence from the audit trail")
    s = p.add_subparsers(dest="compliance_command", metavar="ACTION", required=True)
    r = s.add_parser("report", help="each control with the period's releases and their evidence; "
                     "exit 1 if the audit chain does not verify")
    r.add_argument("--since", help="ISO date/time (default: the start of the trail)")
    r.add_argument("--until", help="ISO date/time (default: now)")
    r.add_argument("--format", choices=["md", "html"], default="md")
    r.add_argument("--json", action="store_true")
    r.add_argument("-o", "--output", help="write to this file instead of stdout")
    r.set_defaults(func=cmd_report)
