"""`suite demo` — what `make demo` runs: bring the platform up and run every stage that exists.

Stages that are not built yet are listed as missing, with the issue that brings them, instead of
being faked.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

from suite import audit, vault
from suite import settings as settings_mod
from suite.errors import ConfigError
from suite.platform import manager
from suite.settings import Settings


@dataclass(frozen=True)
class Step:
    name: str
    module: str  # the step exists once this module does
    issue: str
    run: Callable[[Settings], str]


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _platform(settings: Settings) -> str:
    result = manager.up(settings, report=lambda line: print(f"  {line}"))
    rows = manager.status(settings)
    for r in rows:
        print(f"  {r.name:<11} {r.state:<9} {r.url}")
    if not all(r.healthy for r in rows):
        raise ConfigError("some services are not healthy: see `suite status` and `suite logs`")
    return f"{len(rows)} services healthy (started: {', '.join(result.started) or 'none'})"


def _secrets(settings: Settings) -> str:
    """The webhook service generates the per-provider secrets on start; show Vault serves them."""
    vault.get_secret(vault.client(settings), "webhook/github", "secret")
    return "webhook secrets in Vault (secret/suite/webhook/<provider>; values not shown)"


def _audit(settings: Settings) -> str:
    report = audit.verify(settings)
    if not report.ok:
        raise ConfigError(str(report))
    return str(report)


STEPS = [
    Step("local platform", "suite.platform.manager", "#2", _platform),
    Step("Vault secrets", "suite.vault", "#2", _secrets),
    Step("audit trail", "suite.audit", "#2", _audit),
]

PLANNED = [
    ("train → ONNX → MLflow registry, model server", "flows.train", "#4"),
    ("build, scan, test with SBOM and signed provenance", "tasks.build", "#5"),
    ("canary judge and Prometheus provider", "tasks.canary.judge", "#3"),
    ("Pulumi provisioning and CrossGuard policy pack", "tasks.provision", "#7"),
    ("release flow: deploy, canary steps, promote or roll back", "flows.release", "#6"),
]


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_mod.load()
    for number, step in enumerate(STEPS, start=1):
        print(f"[{number}/{len(STEPS)}] {step.name}")
        print(f"  -> {step.run(settings)}")
    missing = [(name, issue) for name, module, issue in PLANNED if not _exists(module)]
    if missing:
        print("cannot run the demo releases; still missing:")
        for name, issue in missing:
            print(f"  - {name} (issue {issue})")
        return 1
    from suite.cli.demo import run

    results = run(settings, say=lambda line: print(line, flush=True))
    outcomes = [r.outcome for r in results if r.name.startswith("release")]
    expected = ["promoted", "promoted", "promoted", "promoted", "rolled_back", "rolled_back"]
    if outcomes != expected:
        print(f"unexpected outcomes {outcomes} (expected {expected})", file=sys.stderr)
        return 1
    print("demo OK: v1 promoted, v2 promoted after the canary, v3 rolled back; "
          "stop the platform with `suite down` (data is kept)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    demo = sub.add_parser("demo", help="start the platform and run the demo release")
    demo.set_defaults(func=cmd_demo)
