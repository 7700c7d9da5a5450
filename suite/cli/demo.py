"""The demo (`make demo` → `suite demo`), run as a user would through the deployments:

1. platform up, deployments registered, base image ready; two services onboarded as teams
   would: the model server (this repository's ``suite.yaml``) and ``hello`` (``examples/hello``
   in a git repository of its own, registered by its ``file://`` URL);
2. train v1; first release of both services at once (each becomes stable; v1 `champion`);
3. train v2 → canary of the model server (promoted); a new commit of hello (promoted);
4. bad canaries of both at once: the model server 40 ms slower (rolled back by the sequential
   latency test within seconds of taking traffic), a commit of hello that answers 500 to 30 % of
   requests (rolled back on errors);
5. summary with links (each rolled-back canary with the seconds it served before its rollback),
   `suite audit verify`, and a bare repository whose `git push` releases.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import audit, prefect_http
from suite.errors import ServiceUnavailable
from suite.platform import manager
from suite.settings import PROJECT_DIR, Settings

Say = Callable[[str], None]
RUN_TIMEOUT = 900.0


@dataclass
class RunResult:
    name: str
    flow_run_id: str
    state: str
    seconds: float
    outcome: str = ""
    detail: str = ""
    canary_s: float | None = None  # a rolled-back canary: seconds from its traffic to rollback


def report_stages(markdown: str) -> list[tuple[str, float]]:
    """The (stage, seconds) rows of a release report's "## Stages" table."""
    rows: list[tuple[str, float]] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Stages"
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if inside and len(cells) >= 2 and cells[0] not in ("stage", "") \
                and not cells[0].startswith("---"):
            try:
                rows.append((cells[0], float(cells[1])))
            except ValueError:
                continue
    return rows


def canary_seconds(stages: list[tuple[str, float]], outcome: str) -> float | None:
    """Seconds a rolled-back canary served: from the end of the first setWeight step (its first
    requests) to the end of the step that rolled it back."""
    names = [name for name, _ in stages]
    first = next((i for i, n in enumerate(names) if ": weight " in n), None)
    if first is None or outcome != "rolled_back":
        return None
    return sum(s for n, s in stages[first + 1:] if n.startswith("step "))


TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ALIVE_EVERY = 30.0  # a line at least this often while a run is in one state: a sign of life


def wait_for_run(name: str, get_state: Callable[[], dict[str, Any]], say: Say,
                 timeout: float = RUN_TIMEOUT, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll a flow run until it ends (or ``timeout``); say each new state, and every
    ALIVE_EVERY seconds that it is still in it. Returns the last state type."""
    began = clock()
    last, said = "", began
    while True:
        state = get_state()
        kind, label = str(state.get("type") or "?"), str(state.get("name") or "?")
        now = clock()
        if label != last or now - said >= ALIVE_EVERY:
            say(f"  {name}: {label} ({now - began:.0f}s)")
            last, said = label, now
        if kind in TERMINAL or now - began >= timeout:
            return kind
        sleep(2.0)


def run_deployment(settings: Settings, name: str, parameters: dict[str, Any],
                   say: Say) -> RunResult:
    """Start ``name`` on the work pool and wait for it (the workers run it)."""
    from prefect.deployments import run_deployment as prefect_run

    began = time.monotonic()
    with prefect_http.client_settings(settings.prefect_api_url):
        run = prefect_run(name, parameters=parameters, timeout=0, tags=["demo"])
    run_id = str(run.id)  # type: ignore[union-attr]

    def get_state() -> dict[str, Any]:
        resp = prefect_http.request(settings.prefect_api_url, "GET", f"/flow_runs/{run_id}")
        return dict((resp.json() or {}).get("state") or {}) if resp.status_code == 200 else {}

    label = f"{name} {parameters.get('service', '')}".strip()  # two releases run at once
    state = wait_for_run(label, get_state, say)
    result = RunResult(name, run_id, state, time.monotonic() - began)
    found = prefect_http.request(settings.prefect_api_url, "POST", "/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}})
    artifacts = found.json() if found.status_code == 200 else []  # the summary only loses detail
    for art in artifacts:
        if art.get("key") == "release-report":
            result.outcome = str(art.get("description", "")).rsplit(": ", 1)[-1]
            first = [ln for ln in str(art.get("data", "")).splitlines() if "outcome:" in ln]
            result.detail = first[0].split("—", 1)[-1].strip() if first else ""
            result.canary_s = canary_seconds(report_stages(str(art.get("data", ""))),
                                             result.outcome)
    say(f"  {name}: {state} in {result.seconds:.0f}s {result.outcome} "
        f"{settings.url('prefect')}/runs/flow-run/{result.flow_run_id}")
    if state != "COMPLETED":
        raise ServiceUnavailable(f"{name} run {result.flow_run_id} ended {state}; see the "
                                 f"Prefect UI or `suite logs worker-1`")
    return result


def hello_repo(settings: Settings) -> tuple[Path, str]:
    """``examples/hello`` as a team's repository: a work tree and the bare repo it pushes to."""
    work, bare = settings.dir("demo", "hello-work"), settings.dir("demo", "hello.git")
    git = ["git", "-c", "user.email=demo@example.org", "-c", "user.name=demo"]
    if not (work / ".git").exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(PROJECT_DIR / "examples" / "hello", work,
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
        subprocess.run([*git, "add", "-A"], cwd=work, check=True)
        subprocess.run([*git, "commit", "-qm", "hello v1"], cwd=work, check=True)
        shutil.rmtree(bare, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
        subprocess.run(["git", "remote", "add", "origin", str(bare)], cwd=work, check=True)
    return work, f"file://{bare}"


def commit_hello(work: Path, greeting: str, error_ratio: str) -> None:
    """A new commit of hello's manifest (its greeting and its fault knob), pushed."""
    git = ["git", "-c", "user.email=demo@example.org", "-c", "user.name=demo"]
    manifest = work / "suite.yaml"
    lines = [ln for ln in manifest.read_text().splitlines() if not ln.startswith("env:")]
    lines.insert(lines.index("route: {host: hello.localhost}"),
                 f"env: {{HELLO_GREETING: {greeting}, HELLO_ERROR_RATIO: '{error_ratio}'}}")
    manifest.write_text("\n".join(lines) + "\n")
    subprocess.run([*git, "commit", "-qam", f"hello: {greeting}, errors {error_ratio}"],
                   cwd=work, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=work, check=True)


def both(settings: Settings, say: Say, model: dict[str, Any],
         hello: dict[str, Any]) -> list[RunResult]:
    """Release the two services at once (different workers of the pool)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_deployment, settings, "release/release", params, say)
                for params in (model, hello)]
        return [r.result() for r in runs]


def run(settings: Settings, say: Say = print) -> list[RunResult]:
    from suite import engine
    from suite.deployments import deploy
    from suite.services import onboard
    from tasks.images import base

    began = time.monotonic()
    say("[1/5] platform, and two services onboarded")
    manager.up(settings, report=lambda line: say(f"  {line}"))
    deploy(settings)
    base.ensure_base(settings, engine.client(settings), report=lambda line: say(f"  {line}"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, check=True,
                          capture_output=True, text=True).stdout.strip()
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=PROJECT_DIR,
                            check=True, capture_output=True, text=True).stdout.strip()
    onboard.add(settings, str(PROJECT_DIR), "HEAD" if branch == "HEAD" else branch)
    work, url = hello_repo(settings)
    onboard.add(settings, url, "main")
    say(f"  model-server from {PROJECT_DIR}; hello from {url}")
    from models.data import default_rows

    model = {"service": "model-server", "git_sha": head, "synthetic_load_rps": 20.0,
             "synthetic_load_path": "/predict",
             "synthetic_load_body": {"inputs": default_rows(1)}, "triggered_by": "make demo"}
    hello = {"service": "hello", "synthetic_load_rps": 20.0, "triggered_by": "make demo"}
    results: list[RunResult] = []
    say("[2/5] train v1; first release of both services at once")
    results.append(run_deployment(settings, "train/train", {"epochs": 6}, say))
    results += both(settings, say, model, hello)
    say("[3/5] train v2: model-server canary, then a new commit of hello (both promoted)")
    results.append(run_deployment(settings, "train/train", {"epochs": 40}, say))
    commit_hello(work, "hi", "0")
    # one after the other: a good canary is judged on a quiet machine (two builds and two
    # analyses at once on 2 cores made a fresh replica's p90 read 1.9x: MARGINAL, seen once)
    results.append(run_deployment(settings, "release/release", model, say))
    results.append(run_deployment(settings, "release/release", hello, say))
    say("[4/5] bad canaries at once: model-server +40 ms, hello 30 % errors (both roll back)")
    commit_hello(work, "hey", "0.3")
    results += both(settings, say, {**model, "env": {"SERVE_FAULT_LATENCY_MS": "40"}}, hello)
    say("[5/5] summary")
    for r in results:
        if r.name.startswith("release"):
            served = f" ({r.canary_s:.1f} s from the canary's first requests to the rollback)" \
                if r.canary_s is not None else ""
            say(f"  release {r.outcome or r.state}{served}: {r.detail}")
    report = audit.verify(settings)
    say(f"  {report}")
    subprocess.run([str(PROJECT_DIR / ".venv" / "bin" / "suite"), "hooks", "install",
                    url.removeprefix("file://"), "--force"], check=True, capture_output=True)
    say(f"  Prefect UI: {settings.url('prefect')}/runs   MLflow model: "
        f"{settings.url('mlflow')}/#/models/digits")
    say(f"  hello: curl -H 'Host: hello.localhost' {settings.url('haproxy')}/hello?name=you")
    say(f"  try: cd {work} && git commit --allow-empty -m again && git push origin HEAD:main"
        f"   (hello's post-receive hook starts its release)")
    say(f"  demo wall time {time.monotonic() - began:.0f}s")
    if not report.ok:
        raise ServiceUnavailable(str(report))
    return results
