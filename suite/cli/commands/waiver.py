"""`suite waiver sign | list [FILE]` — scan waivers signed by an approver (Vault ``suite-waiver``).

A waiver in the scan policy counts at the scan gate only once an approver has signed it here;
editing it afterwards (its id, scope, reason, expiry) voids the signature.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from suite import settings as settings_mod
from suite.errors import ConfigError

if TYPE_CHECKING:
    import hvac


def _path(args: argparse.Namespace) -> Path:
    from policies import scan as scan_policy

    return Path(args.file) if args.file else scan_policy.DEFAULT_POLICY


def _session_client(settings: settings_mod.Settings) -> hvac.Client | None:
    """The person logged in with `suite login`, or None."""
    import hvac

    from suite import people

    session = people.load_session(settings)
    if session is None:
        return None
    return hvac.Client(url=settings.vault_addr, token=session.token, timeout=30)


def _approver_client(settings: settings_mod.Settings) -> hvac.Client:
    """The logged-in person: a waiver names a person, so the operator's admin token (no
    person behind it) does not sign one."""
    client = _session_client(settings)
    if client is None:
        raise ConfigError("a waiver is signed by a person: run `suite login NAME` as an approver "
                          "(an admin makes one with `suite users add NAME --role approver`)")
    return client


def cmd_list(args: argparse.Namespace) -> int:
    from policies import scan as scan_policy
    from tasks import waivers

    path = _path(args)
    policy = scan_policy.load(path)
    settings = settings_mod.load()
    client = _session_client(settings)
    verify = waivers.verifier(client) if client else waivers.settings_verifier(settings)
    checks = waivers.check_policy(policy, verify, datetime.now(UTC).date(), str(path))
    if not checks:
        print(f"{path}: no waivers")
        return 0
    for check in checks.values():
        print(waivers.describe(check))
    bad = sum(not c.valid for c in checks.values())
    print(f"{len(checks)} waiver(s), {bad} that do not count (max lifetime "
          f"{policy.waiver_max_days} days)")
    return 1 if bad else 0


def cmd_sign(args: argparse.Namespace) -> int:
    from policies import scan as scan_policy
    from suite import audit
    from tasks import waivers

    settings = settings_mod.load()
    path = _path(args)
    policy = scan_policy.load(path)
    now = datetime.now(UTC)
    client = _approver_client(settings)
    checks = waivers.check_policy(policy, waivers.verifier(client), now.date(), str(path))
    chosen = waivers.to_sign(checks, args.id or [], now.date(), policy.waiver_max_days)
    if not chosen:
        print(f"{path}: every waiver is signed and valid (name one with --id to sign it again)")
        return 0
    print(f"signing {len(chosen)} waiver(s) of {path}:")
    for w in chosen:
        print(f"  {w.id} service={w.service or 'every'} location={w.location or 'any'} "
              f"until {w.expires}: {w.reason}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("not a terminal: pass --yes to sign the waivers listed above")
        if input("sign these as yourself? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing signed")
            return 1
    signed = waivers.sign_file(path, client, chosen, now)
    for s in signed:
        audit.append(settings, actor=s.after.approver, action="waiver.sign",
                     subject=f"waiver:{s.after.id}",
                     inputs={"file": str(path), "service": s.after.service,
                             "location": s.after.location, "expires": str(s.after.expires),
                             "reason": s.after.reason, "signature": s.after.signature})
        print(f"signed {s.after.id} as {s.after.approver} (until {s.after.expires})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    wv = sub.add_parser("waiver", help="scan waivers: sign as an approver, list and check")
    wsub = wv.add_subparsers(dest="waiver_command", required=True)
    sign = wsub.add_parser("sign", help="sign the scan policy's unsigned waivers (approver role)")
    sign.add_argument("file", nargs="?", help="scan policy YAML (default policies/scan.yaml)")
    sign.add_argument("--id", action="append",
                      help="sign only this waiver (again, even if valid); repeatable")
    sign.add_argument("--yes", action="store_true", help="do not ask before signing")
    sign.set_defaults(func=cmd_sign)
    ls = wsub.add_parser("list", help="every waiver and whether it counts (exit 1 if one "
                                      "does not)")
    ls.add_argument("file", nargs="?", help="scan policy YAML (default policies/scan.yaml)")
    ls.set_defaults(func=cmd_list)
