"""`suite` command line. It sits above every stage it drives (the foundation in ``suite/``
imports nothing from ``tasks/``, ``models/`` or ``policies/``; this package may). Each command
group lives in ``suite/cli/commands/<group>.py`` with a
``register(subparsers)`` function; adding a group is a module plus one line in ``GROUPS``.

Exit codes (README, "Exit codes"), decided here and nowhere else, so a script can tell a failed
check from a typo from a platform that is down:

    0  success
    1  a check or an outcome failed (verify, scan gate, rolled-back release, any other SuiteError)
    2  usage error (argparse, ConfigError and its children such as ManifestError)
    3  a platform service is unavailable (ServiceUnavailable, PortInUse, MissingBinary)

A VaultError (Vault answered, but refused or failed the operation) is a failed outcome, 1: a
Vault that does not answer raises ServiceUnavailable.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from suite.errors import (
    ConfigError,
    MissingBinary,
    ServiceUnavailable,
    SuiteError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

# Most specific first: the first class an error is an instance of gives its code; any other
# SuiteError (GateBlocked, DeployError, ProviderError, AuditError, VaultError,
# RolledBack, ...) is EXIT_FAILED.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_USAGE),
    (ServiceUnavailable, EXIT_UNAVAILABLE),
    (MissingBinary, EXIT_UNAVAILABLE),
    (SuiteError, EXIT_FAILED),
)

GROUPS = [
    "suite.cli.commands.platform",
    "suite.cli.commands.secrets",
    "suite.cli.commands.people",
    "suite.cli.commands.audit",
    "suite.cli.commands.model",
    "suite.cli.commands.demo",
    "suite.cli.commands.webhook",
    "suite.cli.commands.load",
    "suite.cli.commands.images",
    "suite.cli.commands.services",
    "suite.cli.commands.release",
    "suite.cli.commands.doctor",
    "suite.cli.commands.compliance",
    "suite.cli.commands.completion",
    "suite.cli.commands.waiver",
]


def version() -> str:
    try:
        return metadata.version("ultimate-suite")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="suite",
        description="Ultimate Suite: build, scan, canary and release software and models.",
        epilog="exit codes: 0 success, 1 a check or an outcome failed, 2 usage error, "
               "3 a platform service is unavailable",
    )
    root.add_argument("--version", action="version", version=f"suite {version()}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(name).register(sub)
    return root


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error raised by a command."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # a usage error exits 2 here (argparse)
    try:
        code = args.func(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
