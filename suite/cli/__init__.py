"""`suite` command line. It sits above every stage it drives (the foundation in ``suite/``
imports nothing from ``tasks/``, ``models/`` or ``policies/``; this package may). Each command
group lives in ``suite/cli/commands/<group>.py`` with a
``register(subparsers)`` function; adding a group is a module plus one line in ``GROUPS``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from suite.errors import SuiteError

GROUPS = [
    "suite.cli.commands.platform",
    "suite.cli.commands.secrets",
    "suite.cli.commands.audit",
    "suite.cli.commands.model",
    "suite.cli.commands.demo",
    "suite.cli.commands.webhook",
    "suite.cli.commands.load",
    "suite.cli.commands.images",
    "suite.cli.commands.services",
    "suite.cli.commands.release",
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="suite",
        description="Ultimate Suite: build, scan, canary and release software and models.",
    )
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(name).register(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
