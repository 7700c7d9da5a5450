"""`suite doctor [--json]`: binaries and versions, ports, disk, clock, platform health; the fix
for each problem; exit 1 when something is wrong."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from suite import settings as settings_mod
from suite.cli import doctor

MARK = {doctor.Level.OK: "ok  ", doctor.Level.WARN: "warn", doctor.Level.FAIL: "FAIL"}


def cmd_doctor(args: argparse.Namespace) -> int:
    result = doctor.diagnose(settings_mod.load())
    if args.json:
        print(json.dumps({"ok": result.ok, "checks": [asdict(c) for c in result.checks]},
                         indent=2))
        return 0 if result.ok else 1
    area = ""
    for c in result.checks:
        if c.area != area:
            area = c.area
            print(area)
        print(f"  {MARK[c.level]} {c.name:<22} {c.detail}")
        if c.fix and c.level is not doctor.Level.OK:
            print(f"       fix: {c.fix}")
    problems = result.problems
    print("no problems found" if not problems else
          f"{len(problems)} problem(s): " + ", ".join(f"{c.area} {c.name}" for c in problems))
    return 0 if result.ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("doctor", help="check binaries, ports, disk, clock and platform health")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
