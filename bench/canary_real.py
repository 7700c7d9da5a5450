"""Sequential canary analysis on the real platform: A/A releases (the same image, and for the
model server the same model, as stable and canary) must not roll back, and the demo's fault
(the model server 40 ms slower) must roll back within seconds of the canary taking traffic.

Run by hand, one release after the other (a temporary SUITE_HOME and free ports; the machine is
shared, so nothing runs in parallel):
    .venv/bin/python bench/canary_real.py --model-server 10 --hello 0 --fault [--write]
Flows run in this process, as in tests/e2e. For each release: outcome, reason, the smallest
p-value each sequential test reached over the release's watched pauses and analysis steps, and
the seconds from the canary's weight going up (its first requests) to the rollback decision.
``--write`` replaces the "### On the real platform" part of bench/RESULTS.md's sequential
section (kept below that section's simulated figures).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.cli.demo import canary_seconds
from suite.errors import ServiceUnavailable
from suite.platform import credentials
from suite.settings import PROJECT_DIR, Settings, child_env
from tests.conftest import free_ports

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "### On the real platform"
GIT = ["git", "-c", "user.email=bench@example.org", "-c", "user.name=bench"]
LOAD_RPS = 20.0  # the demo's and the e2e tests' rate


def min_p(steps: list[dict[str, Any]]) -> dict[str, float]:
    """The smallest p-value each sequential test reached over the release's steps."""
    found: dict[str, float] = {}
    for step in steps:
        for check in step.get("sequential") or []:
            for _, p in check.get("history") or []:
                found[check["name"]] = min(found.get(check["name"], 1.0), float(p))
    return found


class Bench:
    def __init__(self, home: Path) -> None:
        self.settings = Settings(home=home, ports=free_ports(), workers=1)
        self.records: list[Any] = []

    def up(self) -> None:
        from suite import engine
        from suite.deployments import deploy
        from suite.platform import manager
        from tasks.images import base

        for attempt in range(3):  # on a loaded machine a service can miss its 90 s to healthy
            try:
                manager.up(self.settings)  # starts only what is down
                break
            except ServiceUnavailable as exc:
                if attempt == 2:
                    raise
                print(f"  platform not up yet ({str(exc)[:200]}); again", flush=True)
        os.environ.update(child_env(self.settings))
        os.environ.update(credentials.mlflow_env(self.settings))
        os.environ["PREFECT_API_URL"] = self.settings.prefect_api_url
        from suite import prefect_http  # flows run in this process: Prefect's client needs it

        os.environ["PREFECT_API_AUTH_STRING"] = str(
            prefect_http.auth_string(self.settings.prefect_api_url))
        base.ensure_base(self.settings, engine.client(self.settings))
        deploy(self.settings, force=True)
        import flows.release
        from tasks import report

        original = report.report_task

        def keep(rec: Any) -> str:  # the record as the report gets it: steps with p-values
            self.records.append(rec)
            return str(original(rec))

        flows.release.report_task = keep  # type: ignore[assignment]

    def release(self, **kwargs: Any) -> dict[str, Any]:
        from flows.release import release

        began = time.monotonic()
        out = dict(release(synthetic_load_rps=LOAD_RPS, triggered_by="bench", **kwargs))
        rec = self.records[-1]
        out["wall"] = time.monotonic() - began
        out["min_p"] = min_p(rec.steps)
        out["canary_s"] = canary_seconds(list(out["stages"].items()), out["outcome"])
        out["steps"] = [(s.get("kind", "analysis"), s.get("weight"), s.get("verdict"))
                        for s in rec.steps]
        out["warmup"] = next((s.detail for s in rec.stages if s.name == "warm-up canary"), "")
        if out["warmup"]:
            print(f"  warm-up: {out['warmup'][:400]}", flush=True)
        print(f"  {kwargs.get('service')}: {out['outcome']} in {out['wall']:.0f}s, min p "
              f"{out['min_p']}, steps {out['steps']}: {out['reason'][:300]}", flush=True)
        return out

    def model_server(self) -> dict[str, Any]:
        from flows.train import train

        gate = str(PROJECT_DIR / "tests" / "e2e" / "model-gate.yaml")
        train(model_name="digits", epochs=8, seed=0, policy_path=gate)
        from suite.services import onboard

        branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=PROJECT_DIR)
        onboard.add(self.settings, str(PROJECT_DIR), "HEAD" if branch == "HEAD" else branch)
        return self.release(**self._model_args())

    def _model_args(self, **extra: Any) -> dict[str, Any]:
        from models.data import default_rows

        return {"service": "model-server", "git_sha": _git("rev-parse", "HEAD", cwd=PROJECT_DIR),
                "synthetic_load_path": "/predict",
                "synthetic_load_body": {"inputs": default_rows(1)}, **extra}

    def hello(self) -> dict[str, Any]:
        from suite.services import onboard

        work = self.settings.home / "hello-work"
        shutil.copytree(PROJECT_DIR / "examples" / "hello", work,
                        ignore=shutil.ignore_patterns("__pycache__"))
        _git("init", "-q", "-b", "main", cwd=work)
        _git("add", "-A", cwd=work)
        _git("commit", "-qm", "v1", cwd=work)
        onboard.add(self.settings, f"file://{work}", "main")
        return self.release(service="hello")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def aa(bench: Bench, name: str, count: int, again: Callable[[], dict[str, Any]]) -> list[str]:
    rows = []
    for i in range(1, count + 1):
        out = again()
        p = ", ".join(f"{k} {v:.3g}" for k, v in sorted(out["min_p"].items())) or "no data"
        rows.append(f"| {name} A/A {i} | {out['outcome']} | {out['wall']:.0f} s | {p} | "
                    f"{out['reason'][:160].replace('|', '/')} |")
    return rows


def fault_release(bench: Bench) -> str:
    out = bench.release(**bench._model_args(env={"SERVE_FAULT_LATENCY_MS": "40"}))
    fault = (f"The demo's fault (model server +40 ms): **{out['outcome']}** "
             f"{out['canary_s']:.1f} s after the canary's weight went up; reason: "
             f"{out['reason'][:300]}; warm-up before it: {out['warmup'][:300]}"
             if out["canary_s"] is not None else
             f"The demo's fault (model server +40 ms): {out['outcome']}: {out['reason']}")
    print(fault, flush=True)
    return fault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-server", type=int, default=10, help="A/A releases of it")
    parser.add_argument("--hello", type=int, default=0, help="A/A releases of hello")
    parser.add_argument("--fault", action="store_true", help="+40 ms canary, 2nd")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the platform's home")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    bench = Bench(home)
    began = time.monotonic()
    rows: list[str] = []
    fault = ""
    from suite.platform import manager

    try:
        bench.up()
        if args.model_server or args.fault:
            first = bench.model_server()
            assert first["outcome"] == "promoted", first
            if args.fault:  # first: a rollback leaves stable as it was, and a long run that
                fault = fault_release(bench)  # is stopped early still has it
            rows += aa(bench, "model-server", args.model_server,
                       lambda: bench.release(**bench._model_args()))
        if args.hello:
            first = bench.hello()
            assert first["outcome"] == "promoted", first
            rows += aa(bench, "hello", args.hello, lambda: bench.release(service="hello"))
    finally:
        manager.down(bench.settings)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    rolled = sum("| rolled_back |" in r or "| failed |" in r for r in rows)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    flags = f"--model-server {args.model_server} --hello {args.hello}" + (
        " --fault" if args.fault else "")
    section = "\n".join([
        HEADING, "",
        f"`bench/canary_real.py {flags}`, {when} UTC, {os.cpu_count()} CPUs, load average "
        f"{load} (a shared machine); {LOAD_RPS:g} req/s of synthetic load, the services' own "
        "manifests (20 % then 50 %), the built-in templates with their sequential tests on; "
        f"{time.monotonic() - began:.0f} s.",
        "",
        f"A/A releases (the same image and model as stable and canary): {len(rows)}, "
        f"rolled back {rolled}.", "",
        "| release | outcome | wall | smallest p per sequential test | reason |",
        "|---|---|---|---|---|", *rows, "", fault, ""])
    print(section)
    if args.write:
        write(section)


def write(section: str) -> None:
    """Below the simulated figures of "## Sequential canary analysis", replacing an older run."""
    text = RESULTS.read_text()
    start = text.index("## Sequential canary analysis")
    end = text.find("\n## ", start + 3)
    end = len(text) if end < 0 else end + 1
    part = text[start:end]
    if HEADING in part:
        part = part[:part.index(HEADING)]
    part = part.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n\n"
    RESULTS.write_text(text[:start] + part + text[end:])


if __name__ == "__main__":
    main()
