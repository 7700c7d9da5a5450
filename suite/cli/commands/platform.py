"""`suite up | down | status | logs | env`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from suite import settings as settings_mod
from suite.errors import ConfigError, SuiteError
from suite.platform import manager, process
from suite.platform.services import build
from suite.settings import DEFAULT_PORTS, Settings


def _port_overrides(values: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for item in values:
        name, _, raw = item.partition("=")
        if name not in DEFAULT_PORTS or not raw.isdigit():
            raise ConfigError(
                f"--port {item!r} is not NAME=PORT with NAME one of {', '.join(DEFAULT_PORTS)}"
            )
        ports[name] = int(raw)
    return ports


WITHOUT_AUDIT = "--without-audit"


def _audit(settings: Settings, action: str, subject: str, inputs: dict[str, object],
           without_audit: bool = False, consequence: str = "") -> None:
    """Nothing is done without its record: an audit failure stops the command (exit 1) unless
    the user passed --without-audit, which makes it a warning."""
    from suite import audit
    from suite.errors import AuditError

    try:
        audit.append(settings, action=action, subject=subject, inputs=inputs)
    except SuiteError as exc:
        if not without_audit:
            raise AuditError(f"audit event {action} could not be recorded: {exc}; "
                             f"{consequence}fix it (`suite status`, `suite doctor`) or pass "
                             f"{WITHOUT_AUDIT} to go on without the record") from exc
        print(f"warning: audit event {action} not recorded ({WITHOUT_AUDIT}): {exc}",
              file=sys.stderr)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_mod.load().with_overrides(
        ports=_port_overrides(args.port), workers=args.workers, database=args.database,
        rate_limit=args.rate_limit,
    )
    began = time.monotonic()
    result = manager.up(settings, only=args.only or None, report=_say)
    elapsed = time.monotonic() - began
    if args.rate_limit is not None and "haproxy" in result.already:
        from suite.platform.services.haproxy import HaproxyService

        HaproxyService(settings).reload()  # a running router takes the new limit at once
    if result.started:
        _audit(settings, "platform.up", ",".join(result.started),
               {"ports": dict(settings.ports), "workers": settings.workers,
                "database": settings.database}, args.without_audit,
               f"the services started ({', '.join(result.started)}) keep running but the "
               f"deployments were not registered; ")
    print(f"platform up in {elapsed:.1f}s (started: {', '.join(result.started) or 'none'}; "
          f"already running: {', '.join(result.already) or 'none'})")
    if not args.only and not args.no_deploy:
        from suite.deployments import deploy

        if deploy(settings):
            print("registered the deployments of prefect.yaml (train, release, rollback, ...)")
    recovered = _crash_recovery(settings) if not args.only else True
    _print_status(settings)
    return 0 if recovered else 1


def _crash_recovery(settings: Settings) -> bool:
    """The crash automations exist, and every release left unfinished by a run that is gone is
    rolled back (``docs/reliability.md``). False (and says why) when that failed."""
    from suite.deployments import ensure_automations
    from tasks.reconcile import reconcile, unfinished

    ok = True
    try:
        for line in ensure_automations(settings):
            print(f"automation {line}")
    except SuiteError as exc:
        print(f"error: the crash automations are not set: {exc}", file=sys.stderr)
        ok = False
    for service, intent in unfinished(settings):
        try:
            done = reconcile(settings, service, "suite up found it unfinished")
        except SuiteError as exc:
            print(f"error: the unfinished release {intent.release} of {service} was not "
                  f"reconciled: {exc}; `suite up` again once that is fixed", file=sys.stderr)
            ok = False
            continue
        if done is not None:
            print(f"reconciled {done.line()}")
    return ok


def _stop_releases(settings: Settings, abort: bool) -> bool:
    """False (and says why) when releases are in progress and ``abort`` is not given; with it,
    each is rolled back first. Releases whose run is already gone are reconciled either way."""
    from tasks.reconcile import (
        abort_release,
        prefect_run_state,
        reconcile,
        run_gone,
        unfinished,
    )

    running = []
    for service, intent in unfinished(settings):
        if run_gone(intent, prefect_run_state(settings)):
            try:
                done = reconcile(settings, service, "suite down found it unfinished")
            except SuiteError as exc:  # `suite up` reconciles it next time
                print(f"warning: {service} not reconciled: {exc}", file=sys.stderr)
                continue
            if done is not None:
                print(f"reconciled {done.line()}")
        else:
            running.append((service, intent))
    if not running:
        return True
    names = ", ".join(f"{s} (release {i.release}, run {i.flow_run_id}, {i.phase})"
                      for s, i in running)
    if not abort:
        print(f"error: releases are in progress: {names}. Wait for them (`suite release status "
              f"NAME`), or `suite down --abort-releases` to roll each back first",
              file=sys.stderr)
        return False
    for service, _ in running:
        result = abort_release(settings, service, "suite-down", "suite down --abort-releases")
        print(result if isinstance(result, str) else f"reconciled {result.line()}")
    return True


def cmd_down(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    running = [s.name for s in manager.status(settings) if s.running]
    if running and not args.only and not _stop_releases(settings, args.abort_releases):
        return 1
    if running:
        _audit(settings, "platform.down", ",".join(args.only or running), {},
               args.without_audit, "nothing was stopped; ")
    stopped = manager.down(settings, only=args.only or None, report=_say)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from suite.deployments import deploy

    deploy(settings_mod.load(), force=True)
    print("registered the deployments of prefect.yaml")
    return 0


def _print_status(settings: Settings, as_json: bool = False) -> int:
    rows = manager.status(settings)
    if as_json:
        print(json.dumps([{"name": r.name, "state": r.state, "url": r.url, "pid": r.pid,
                           "detail": r.detail} for r in rows], indent=2))
    else:
        print(f"{'SERVICE':<11} {'STATE':<10} {'PID':>7}  {'URL':<30} DETAIL")
        for r in rows:
            print(f"{r.name:<11} {r.state:<10} {r.pid or '-':>7}  {r.url:<30} {r.detail}")
    return 0 if all(r.healthy for r in rows) else 1


def cmd_status(args: argparse.Namespace) -> int:
    return _print_status(settings_mod.load(), args.json)


def cmd_logs(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    names = {s.name: s for s in build(settings)}
    if args.service not in names:
        raise ConfigError(f"unknown service {args.service!r} (known: {', '.join(names)})")
    path = names[args.service].log_path
    if not path.exists():
        print(f"no log yet at {path}")
        return 0
    print(process.tail(path, args.lines))
    if args.follow:
        with open(path, encoding="utf-8", errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                return 0
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    exports = {
        "SUITE_HOME": str(settings.home),
        "PREFECT_API_URL": settings.prefect_api_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "VAULT_ADDR": settings.vault_addr,
        "BAO_ADDR": settings.vault_addr,
    }
    if args.json:
        print(json.dumps(exports, indent=2))
        return 0
    for key, value in exports.items():
        print(f"export {key}={value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    up = sub.add_parser("up", help="start the local platform (only what is down)")
    up.add_argument("--workers", type=int, default=None, help="Prefect process workers (2)")
    up.add_argument("--database", choices=["sqlite", "postgres"], default=None,
                    help="Prefect server database (sqlite; postgres for many workers)")
    up.add_argument("--rate-limit", type=int, default=None, metavar="N",
                    help="requests/s one source address may send to the release address, "
                         "averaged over 10 s; beyond it HAProxy answers 429 (1000; 0: off)")
    up.add_argument("--port", action="append", default=[], metavar="NAME=PORT",
                    help="override a port, e.g. prefect=4300 (defaults: "
                    + ", ".join(f"{k}={v}" for k, v in DEFAULT_PORTS.items()) + ")")
    up.add_argument("--only", action="append", default=[], metavar="SERVICE",
                    help="start only this service (and what it needs); repeatable")
    up.add_argument("--no-deploy", action="store_true",
                    help="do not register prefect.yaml's deployments")
    up.add_argument(WITHOUT_AUDIT, action="store_true",
                    help="go on when the start cannot be recorded in the audit trail (a warning "
                    "instead of exit 1)")
    up.set_defaults(func=cmd_up)
    dep = sub.add_parser("deploy", help="register prefect.yaml's deployments with Prefect")
    dep.set_defaults(func=cmd_deploy)
    down = sub.add_parser("down", help="stop the local platform gracefully (data is kept)")
    down.add_argument("--only", action="append", default=[], metavar="SERVICE")
    down.add_argument(WITHOUT_AUDIT, action="store_true",
                      help="stop even when the stop cannot be recorded in the audit trail (e.g. "
                      "Vault is already down)")
    down.add_argument("--abort-releases", action="store_true",
                      help="roll back every release in progress first (default: refuse to "
                      "stop while one runs)")
    down.set_defaults(func=cmd_down)
    st = sub.add_parser("status", help="name, state, pid, URL of each service")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="show a service's log")
    logs.add_argument("service")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=cmd_logs)
    env = sub.add_parser("env", help="print shell exports for the platform's URLs")
    env.add_argument("--json", action="store_true")
    env.set_defaults(func=cmd_env)
