"""`suite secrets put|get PATH KEY` — KV v2 under ``secret/suite/``.

The value is read from stdin (or a prompt), never from the command line, where `ps` and shell
history would show it; it is never printed except by `get`, which exists to print it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from suite import settings as settings_mod
from suite import vault
from suite.errors import ConfigError


def _read_value(args: argparse.Namespace) -> str:
    if args.value_file:
        value = Path(args.value_file).read_text().rstrip("\n")
    elif sys.stdin.isatty():
        value = getpass.getpass(f"value for {args.path}#{args.key}: ")
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise ConfigError("empty secret value (pipe it on stdin or use --value-file FILE)")
    return value


def cmd_put(args: argparse.Namespace) -> int:
    from suite import audit

    settings = settings_mod.load()
    value = _read_value(args)
    audit.ready(settings)  # the write is recorded after it: refuse it when it cannot be
    version = vault.put_secret(vault.client(settings), args.path, args.key, value)
    audit.append(settings, action="secret.write", subject=f"secret/suite/{args.path}#{args.key}",
                 inputs={"path": args.path, "key": args.key, "version": version})
    print(f"stored secret/suite/{args.path.strip('/')} key {args.key} (version {version})")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    print(vault.get_secret(vault.client(settings), args.path, args.key))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    sec = sub.add_parser("secrets", help="store and read secrets in Vault")
    ssub = sec.add_subparsers(dest="secrets_command", required=True)
    put = ssub.add_parser("put", help="set PATH KEY from stdin or a prompt")
    put.add_argument("path", help="e.g. webhook/github (stored under secret/suite/)")
    put.add_argument("key")
    put.add_argument("--value-file", help="read the value from this file instead of stdin")
    put.set_defaults(func=cmd_put)
    get = ssub.add_parser("get", help="print the value of PATH KEY")
    get.add_argument("path")
    get.add_argument("key")
    get.set_defaults(func=cmd_get)
