"""`suite` command line. Each command group lives in ``suite/commands/<group>.py`` with a
``register(subparsers)`` function; adding a group is a module plus one line in ``GROUPS``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from suite.errors import SuiteError

GROUPS = [
    "suite.commands.platform",
    "suite.commands.secrets",
    "suite.commands.audit",
    "suite.commands.model",
    "suite.commands.demo",
    "suite.commands.webhook",
    "suite.commands.load",
    "suite.commands.images",
    "suite.commands.services",
    "suite.commands.release",
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
