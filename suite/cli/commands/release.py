"""`suite release NAME [--sha SHA] [--strategy KIND] [--wait] [--json]` and `suite release
status | promote | abort NAME` (Argo Rollouts' words).

Who may: starting a release needs the releaser role, promote/abort and ``--strategy`` the
approver role (suite.people; `suite login`); the actor recorded is the caller's identity.

``release`` starts the ``release/release`` deployment for a registered service on the work
pool; ``--wait`` follows it (current step, weight, last verdict) and exits 0 when promoted, 1
when rolled back or failed, printing the run's URL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from suite import prefect_http
from suite import settings as settings_mod
from suite.errors import ConfigError, ServiceUnavailable

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
DEPLOYMENT = "release/release"


def _run_state(api: str, run_id: str) -> dict[str, Any]:
    resp = prefect_http.request(api, "GET", f"/flow_runs/{run_id}")
    if resp.status_code != 200:
        raise ServiceUnavailable(f"Prefect answered {resp.status_code} for flow run {run_id}")
    data: dict[str, Any] = resp.json()
    return data


def start(settings: settings_mod.Settings, service: str, sha: str,
          triggered_by: str, strategy: str = "") -> str:
    """Start a release as the caller's identity, which needs the releaser role; a strategy
    other than the manifest's also needs an approver (an identity token goes with the run)."""
    from prefect.deployments import run_deployment

    from suite import people
    from suite.services.registry import Registry

    who = people.require(settings, people.Role.RELEASER, f"starting a release of {service}")
    Registry(settings).get(service)  # an unknown name is refused before a run exists
    params: dict[str, Any] = {"service": service, "triggered_by": f"{triggered_by} by {who.name}"}
    if sha:
        params["git_sha"] = sha
    if strategy:
        params["strategy"] = strategy
        params["approval_token"] = people.approval_token(settings)
    try:
        with prefect_http.client_settings(settings.prefect_api_url):
            run = run_deployment(DEPLOYMENT, parameters=params, timeout=0,
                                 tags=["cli", f"service:{service}"])
    except Exception as exc:  # Prefect raises many types
        raise ServiceUnavailable(f"starting {DEPLOYMENT} failed: {type(exc).__name__}: {exc} "
                                 f"(`suite up` registers it)") from exc
    return str(run.id)  # type: ignore[union-attr]


def follow(settings: settings_mod.Settings, service: str, run_id: str,
           quiet: bool, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Poll the run and the release record until the run ends; ``say`` gets each new progress
    line (default: stderr)."""
    from tasks.control import Releases

    releases, api, last = Releases(settings), settings.prefect_api_url, ""
    while True:
        run = _run_state(api, run_id)
        state = run.get("state") or {}
        active = releases.active(service)
        line = f"{state.get('name', '?')}"
        if active and active.flow_run_id == run_id:
            line += f" · step {active.step or '-'} · weight {active.weight} %"
            if active.verdict:
                line += f" · last verdict {active.verdict}"
            if active.phase not in ("running", "ended"):
                line += f" · {active.phase}"
        if line != last and not quiet:
            if say is not None:
                say(line)
            else:
                print(f"  {line}", file=sys.stderr, flush=True)
            last = line
        if state.get("type") in TERMINAL:
            break
        time.sleep(2)
    active = releases.active(service)
    mine = active if active and active.flow_run_id == run_id else None
    outcome = mine.outcome if mine and mine.outcome else outcome_of_state(state)
    return {"service": service, "flow_run_id": run_id, "state": state.get("name"),
            "outcome": outcome, "release": mine.release if mine else "",
            "reason": mine.reason if mine else state.get("message", ""),
            "url": f"{settings.url('prefect')}/runs/flow-run/{run_id}"}


def outcome_of_state(state: dict[str, Any]) -> str:
    """A release run's outcome from its final Prefect state alone: a rollback is a COMPLETED
    state named ``RolledBack`` (flows/release.py), a promotion plain Completed, anything else
    failed (FAILED, CRASHED, CANCELLED)."""
    if state.get("type") != "COMPLETED":
        return "failed"
    return "rolled_back" if state.get("name") == "RolledBack" else "promoted"


def cmd_release(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    run_id = start(settings, args.name, args.sha, args.triggered_by, args.strategy)
    url = f"{settings.url('prefect')}/runs/flow-run/{run_id}"
    if not args.wait:
        print(json.dumps({"service": args.name, "flow_run_id": run_id, "url": url})
              if args.json else f"started release of {args.name}: {url}")
        return 0
    if not args.json:
        print(f"release of {args.name}: {url}", file=sys.stderr)
    from suite.cli.progress import Activity

    with Activity(f"release of {args.name}", quiet=args.json) as act:
        summary = follow(settings, args.name, run_id, quiet=args.json, say=act.update)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.name}: {summary['outcome']} ({summary['state']}): {summary['reason']}\n"
              f"{url}")
    return 0 if summary["outcome"] == "promoted" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from tasks.control import Releases
    from tasks.targets.state import FileStore

    settings = settings_mod.load()
    active = Releases(settings).active(args.name)
    state = FileStore(settings.dir("targets", "local")).load(args.name)
    data = {"service": args.name, "release": asdict(active) if active else None,
            "stable": state.stable.workload.version if state.stable else None,
            "canary": state.canary.workload.version if state.canary else None,
            "canary_weight": state.canary_weight}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{args.name}: stable {data['stable'] or '-'}, canary {data['canary'] or '-'} "
          f"at {state.canary_weight} %")
    if active:
        print(f"  release {active.release} ({active.strategy}) {active.phase}"
              f"{' ' + active.outcome if active.outcome else ''}: step {active.step or '-'}, "
              f"last verdict {active.verdict or '-'}  {active.reason[:160]}")
        print(f"  {settings.url('prefect')}/runs/flow-run/{active.flow_run_id}")
    return 0


def _resume_if_paused(settings: settings_mod.Settings, run_id: str, decision: str,
                      identity_token: str, reason: str) -> bool:
    """A run paused for a MARGINAL approval gets the answer as its input, with the approver's
    identity token: the flow records the identity Vault vouches for, never a typed name."""
    run = _run_state(settings.prefect_api_url, run_id)
    if (run.get("state") or {}).get("type") != "PAUSED":
        return False
    resp = prefect_http.request(settings.prefect_api_url, "POST",
                                f"/flow_runs/{run_id}/resume", json={"run_input": {
                                    "decision": decision, "identity_token": identity_token,
                                    "reason": reason}})
    if resp.status_code >= 300:
        raise ServiceUnavailable(f"resuming {run_id} failed: {resp.status_code} {resp.text}")
    return True


def _command(args: argparse.Namespace, command: str) -> int:
    from suite import people
    from tasks.control import Command, Releases

    settings = settings_mod.load()
    who = people.require(settings, people.Role.APPROVER, f"`suite release {command}`")
    token = people.approval_token(settings)  # the flow checks it; a releaser gets none
    active = Releases(settings).send(args.name, Command(command), who.name, args.reason, token)
    resumed = _resume_if_paused(settings, active.flow_run_id,
                                "approve" if command == "promote" else "rollback", token,
                                args.reason)
    print(f"{command} sent to release {active.release} of {args.name}"
          f"{' (it was waiting for approval: resumed)' if resumed else ''}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """The last releases (newest first) as the audit trail records them: no platform needed
    but the trail's folder."""
    from suite.cli.commands.compliance import audit_records
    from tasks.compliance import releases

    service = args.service or args.target
    found = [ev for ev in reversed(releases(audit_records(settings_mod.load())))
             if not service or ev.service == service][: args.limit]
    rows = [{"release": ev.release, "service": ev.service, "started": ev.started,
             "ended": ev.ended, "outcome": ev.outcome, "started_by": ev.started_by,
             "gates": [f"{g['gate']} {g['outcome']}" for g in ev.gates]} for ev in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no releases{f' of {service}' if service else ''} in the audit trail")
        return 0
    print(f"{'RELEASE':<17} {'SERVICE':<16} {'STARTED':<20} {'OUTCOME':<12} GATES")
    for r in rows:
        print(f"{r['release']:<17} {r['service'] or '?':<16} {r['started'][:19]:<20} "
              f"{r['outcome']:<12} {', '.join(r['gates'])}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("release",
                       help="release a registered service; status | promote | abort | list")
    p.add_argument("name", help="a registered service, or status | promote | abort | list")
    p.add_argument("target", nargs="?", default="",
                   help="the service, after status|promote|abort (optional after list)")
    p.add_argument("--service", default="", help="list: only this service's releases")
    p.add_argument("--limit", type=int, default=20, help="list: how many (20)")
    p.add_argument("--sha", default="", help="commit to release (default: the branch head)")
    p.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if promoted")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--strategy", default="", choices=["", "canary", "blueGreen", "rolling"],
                   help="another strategy than the manifest's (needs the approver role)")
    p.add_argument("--reason", default="", help="why (promote/abort; audited)")
    p.add_argument("--triggered-by", default="suite release (CLI)")
    p.set_defaults(func=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    if args.name == "list":
        return cmd_list(args)
    if args.name in ("status", "promote", "abort"):
        if not args.target:
            raise ConfigError(f"`suite release {args.name}` needs a service name")
        action, args.name = args.name, args.target
        if action == "status":
            return cmd_status(args)
        return _command(args, action)
    if args.target:
        raise ConfigError(f"unexpected argument {args.target!r} (did you mean "
                          f"`suite release status {args.name}`?)")
    return cmd_release(args)
