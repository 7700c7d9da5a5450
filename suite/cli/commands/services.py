"""`suite services validate | add | list | show | remove` — the services a platform releases.

``validate`` needs no platform (a service repository's CI runs it); the others read and write
the registry under SUITE_HOME. Every read command has ``--json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from suite import settings as settings_mod
from suite.services import spec as spec_mod


def _spec_summary(spec: spec_mod.ServiceSpec) -> dict[str, Any]:
    return {"service": spec.service, "port": spec.port, "readiness": spec.readiness,
            "replicas": spec.replicas, "host": spec.host, "strategy": spec.strategy.kind.value,
            "steps": len(spec.strategy.steps), "templates": list(spec.strategy.templates()),
            "memory": spec.resources.memory, "cpus": spec.resources.cpus,
            "secrets": {s.env: str(s) for s in spec.secrets},
            "model": asdict(spec.model) if spec.model else None, "digest": spec.digest}


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        spec = spec_mod.load(Path(args.path))
    except spec_mod.ManifestError as exc:
        if args.json:
            print(json.dumps({"valid": False, "file": exc.where, "problems": exc.problems}))
        else:
            print(f"{exc.where}: invalid, {len(exc.problems)} problem(s):")
            for problem in exc.problems:
                print(f"  - {problem}")
        return 1
    if args.json:
        print(json.dumps({"valid": True, **_spec_summary(spec)}))
    else:
        print(f"{args.path}: {spec.service} is valid ({spec.strategy.kind.value}, "
              f"{spec.replicas} replicas, host {spec.host})")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from suite.services import onboard

    settings = settings_mod.load()
    reg, spec = onboard.add(settings, args.repository, args.branch)
    if args.json:
        print(json.dumps({**asdict(reg), **_spec_summary(spec)}))
        return 0
    print(f"registered {reg.service} from {reg.repository}@{reg.branch} ({reg.head[:12]}): "
          f"http://{reg.host}:{settings.port('haproxy')}/ "
          f"(Host: {reg.host}); release it with `suite release {reg.service} --wait`")
    return 0


def _replicas(settings: settings_mod.Settings, service: str) -> int:
    from tasks.targets.state import FileStore

    state = FileStore(settings.dir("targets", "local")).load(service)
    return sum(len(t.instances) for _, t in state.tracks())


def cmd_list(args: argparse.Namespace) -> int:
    from suite.services.registry import Registry

    settings = settings_mod.load()
    rows = [{**asdict(r), "replicas": _replicas(settings, r.service)}
            for r in Registry(settings).all()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no services registered: `suite services add PATH_OR_GIT_URL`")
        return 0
    print(f"{'SERVICE':<20} {'HOST':<28} {'REPLICAS':>8}  REPOSITORY")
    for r in rows:
        print(f"{r['service']:<20} {r['host']:<28} {r['replicas']:>8}  "
              f"{r['repository']}@{r['branch']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from suite.services.registry import Registry
    from tasks.control import Releases
    from tasks.targets.state import FileStore

    settings = settings_mod.load()
    reg = Registry(settings).get(args.name)
    state = FileStore(settings.dir("targets", "local")).load(args.name)
    active = Releases(settings).active(args.name)
    tracks: dict[str, dict[str, Any]] = {
        role: {"version": t.workload.version, "image": t.workload.image,
               "replicas": [asdict(i) for i in t.instances]}
        for role, t in state.tracks()}
    data = {"registration": asdict(reg), "tracks": tracks,
            "canary_weight": state.canary_weight,
            "last_release": asdict(active) if active else None}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{reg.service}: {reg.repository}@{reg.branch}, host {reg.host}")
    for role, t in tracks.items():
        print(f"  {role:<8} {t['version']:<13} {len(t['replicas'])} replica(s)  {t['image']}")
    if state.canary:
        print(f"  canary weight {state.canary_weight} %")
    if active:
        print(f"  last release {active.release}: {active.phase} {active.outcome} "
              f"{active.reason[:120]}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from suite.services import onboard
    from tasks.targets import get_target

    settings = settings_mod.load()
    replicas = _replicas(settings, args.name)
    if replicas and args.teardown:
        get_target("local", settings).teardown(args.name)  # type: ignore[attr-defined]
        replicas = 0
    onboard.remove(settings, args.name, replicas)
    print(f"removed {args.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("services", help="register and inspect the services the platform releases")
    s = p.add_subparsers(dest="services_command", metavar="ACTION", required=True)
    v = s.add_parser("validate", help="check a suite.yaml offline (exit 1 naming every problem)")
    v.add_argument("path", nargs="?", default=".", help="repository folder or manifest file")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_validate)
    a = s.add_parser("add", help="register a service from its repository's suite.yaml")
    a.add_argument("repository", help="git URL or local path of the service's repository")
    a.add_argument("--branch", default="main", help="the branch releases build from (main)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_add)
    ls = s.add_parser("list", help="registered services")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    sh = s.add_parser("show", help="one service: registration, tracks, last release")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)
    r = s.add_parser("remove", help="unregister (refused while replicas run, unless --teardown)")
    r.add_argument("name")
    r.add_argument("--teardown", action="store_true", help="stop its replicas first")
    r.set_defaults(func=cmd_remove)

