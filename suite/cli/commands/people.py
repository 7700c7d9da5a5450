"""`suite login [NAME]`, `suite logout`, `suite whoami`, `suite approve-token` and
`suite users add|list|remove` — people and their roles (suite.people, docs/security.md).

Passwords and TOTP passcodes are prompted for (or read from stdin), never taken from the
command line, where `ps` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

import hvac

from suite import people
from suite import settings as settings_mod
from suite.errors import ConfigError


def _secret(prompt: str, stdin: bool) -> str:
    if stdin or not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = getpass.getpass(prompt)
    if not value:
        raise ConfigError(f"empty input for {prompt.strip(': ')} (type it, or pipe it on stdin)")
    return value


def cmd_login(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    name = args.name or getpass.getuser()
    password = _secret(f"password for {name}: ", args.password_stdin)

    def passcode() -> str:
        if args.passcode:
            return str(args.passcode)
        return _secret(f"TOTP passcode for {name}: ", args.password_stdin)

    session = people.login(settings, name, password, passcode)
    path = people.save_session(settings, session)
    print(f"logged in as userpass:{session.name} (role {session.role}) until "
          f"{session.expires.isoformat(timespec='seconds')}; token cached in {path} (0600)")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    gone = people.logout(settings)
    print("logged out (token revoked, cache removed)" if gone else "not logged in")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    who = people.identity(settings_mod.load())
    data = {"identity": who.name, "role": who.role.value if who.role else None,
            "expires": who.expires.isoformat(timespec="seconds") if who.expires else None,
            "policies": list(who.policies)}
    if args.json:
        print(json.dumps(data))
    else:
        print(f"{who.name} (role {data['role'] or 'none'}"
              f"{', until ' + str(data['expires']) if data['expires'] else ''})")
    return 0


def cmd_approve_token(args: argparse.Namespace) -> int:
    """For the Prefect UI's approval form: paste this into ``identity_token``."""
    print(people.approval_token(settings_mod.load()))
    return 0


def _admin_client(settings: settings_mod.Settings) -> hvac.Client:
    """A logged-in admin's token, else the operator's admin token (`suite up`'s)."""
    session = people.load_session(settings)
    if session is not None:
        people.require(settings, people.Role.ADMIN, "managing users")
        return hvac.Client(url=settings.vault_addr, token=session.token, timeout=30)
    from suite import vault

    return vault.client(settings)


def cmd_users_add(args: argparse.Namespace) -> int:
    from suite import audit

    settings = settings_mod.load()
    people.check_name(args.name)
    role = people.parse_role(args.role)
    client = _admin_client(settings)
    password = _secret(f"new password for {args.name}: ", args.password_stdin)
    audit.ready(settings)
    url = people.add_user(client, args.name, password, role, totp=args.totp)
    audit.append(settings, action="user.write", subject=f"userpass:{args.name}",
                 inputs={"role": role.value, "totp": args.totp})
    print(f"user {args.name}: role {role}")
    if url:
        print(f"TOTP secret (add it to an authenticator app now; it is not shown again):\n{url}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = people.list_users(_admin_client(settings_mod.load()))
    if args.json:
        print(json.dumps({n: r.value if r else None for n, r in users.items()}))
        return 0
    for name, role in users.items():
        print(f"{name:<24} {role or '-'}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    from suite import audit

    settings = settings_mod.load()
    client = _admin_client(settings)
    audit.ready(settings)
    people.remove_user(client, args.name)
    audit.append(settings, action="user.delete", subject=f"userpass:{args.name}")
    print(f"user {args.name} removed")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    login = sub.add_parser("login", help="log in to Vault as a person (userpass; token cached)")
    login.add_argument("name", nargs="?", default="", help="user name (default: your account)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password (then the passcode) from stdin")
    login.add_argument("--passcode", default="", help="the TOTP passcode (users with --totp)")
    login.set_defaults(func=cmd_login)
    logout = sub.add_parser("logout", help="revoke the cached login and remove it")
    logout.set_defaults(func=cmd_logout)
    who = sub.add_parser("whoami", help="the identity and role this shell acts as")
    who.add_argument("--json", action="store_true")
    who.set_defaults(func=cmd_whoami)
    tok = sub.add_parser("approve-token",
                         help="print a 5-minute approval token (approvers; for the UI's form)")
    tok.set_defaults(func=cmd_approve_token)
    users = sub.add_parser("users", help="people and their roles (admin)")
    usub = users.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="create or update a user with a role")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="viewer | releaser | approver | admin")
    add.add_argument("--totp", action="store_true",
                     help="require a TOTP passcode at login (prints the secret's URL once)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_users_add)
    lst = usub.add_parser("list", help="users and their roles")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_users_list)
    rm = usub.add_parser("remove", help="delete a user")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_users_remove)
