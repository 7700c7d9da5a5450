"""The demo release (`make demo` → `suite demo`), run as a user would through the deployments:

1. platform up, deployments registered, base image ready;
2. train v1 → release v1: the first release becomes stable and `champion`;
3. train v2 → release v2 (canary): every step passes, promoted;
4. train v3 → release v3 with injected latency: the canary fails, is rolled back, `champion`
   stays v2;
5. summary with links, `suite audit verify`, and a bare repository whose `git push` releases.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def run_deployment(settings: Settings, name: str, parameters: dict[str, Any],
                   say: Say) -> RunResult:
    """Start ``name`` on the work pool and wait for it (the workers run it)."""
    from prefect.deployments import run_deployment as prefect_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    began = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: settings.prefect_api_url}):
        run = prefect_run(name, parameters=parameters, timeout=RUN_TIMEOUT,
                          tags=["demo"])
    state = run.state.type.value if run.state else "UNKNOWN"  # type: ignore[union-attr]
    result = RunResult(name, str(run.id), state, time.monotonic() - began)  # type: ignore[union-attr]
    found = prefect_http.request(settings.prefect_api_url, "POST", "/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}})
    artifacts = found.json() if found.status_code == 200 else []  # the summary only loses detail
    for art in artifacts:
        if art.get("key") == "release-report":
            result.outcome = str(art.get("description", "")).rsplit(": ", 1)[-1]
            first = [ln for ln in str(art.get("data", "")).splitlines() if "outcome:" in ln]
            result.detail = first[0].split("—", 1)[-1].strip() if first else ""
    say(f"  {name}: {state} in {result.seconds:.0f}s {result.outcome} "
        f"{settings.url('prefect')}/runs/flow-run/{result.flow_run_id}")
    if state != "COMPLETED":
        raise ServiceUnavailable(f"{name} run {result.flow_run_id} ended {state}; see the "
                                 f"Prefect UI or `suite logs worker-1`")
    return result


def bare_repo(settings: Settings, say: Say) -> str:
    """A bare clone of this project with the post-receive hook: `git push` starts a release."""
    repo = settings.dir("demo", "ultimate-suite.git")
    if not repo.exists():
        repo.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "--quiet", "--bare", str(PROJECT_DIR), str(repo)],
                       check=True)
    subprocess.run([str(PROJECT_DIR / ".venv" / "bin" / "suite"), "hooks", "install", str(repo),
                    "--force"], check=True, capture_output=True)
    return str(repo)


def run(settings: Settings, say: Say = print) -> list[RunResult]:
    from suite import engine
    from suite.deployments import deploy
    from tasks.images import base

    began = time.monotonic()
    say("[1/5] platform")
    manager.up(settings, report=lambda line: say(f"  {line}"))
    deploy(settings)
    base.ensure_base(settings, engine.client(settings), report=lambda line: say(f"  {line}"))
    common = {"synthetic_load_rps": 20.0, "triggered_by": "make demo"}
    results: list[RunResult] = []
    say("[2/5] v1: train, first release (becomes stable and champion)")
    # v1 trains briefly; v2 and v3 train fully (the same deterministic model: v3's fault is in
    # the deployment, not the model), so the model gate sees no drop against the champion
    results.append(run_deployment(settings, "train/train", {"epochs": 6}, say))
    results.append(run_deployment(settings, "release/release", common, say))
    say("[3/5] v2: train, canary release (should pass every step and be promoted)")
    results.append(run_deployment(settings, "train/train", {"epochs": 40}, say))
    results.append(run_deployment(settings, "release/release", common, say))
    say("[4/5] v3: train, canary release with 40 ms injected latency (should roll back)")
    results.append(run_deployment(settings, "train/train", {"epochs": 40}, say))
    results.append(run_deployment(settings, "release/release",
                                  {**common, "fault_latency_ms": 40.0}, say))
    say("[5/5] summary")
    for r in results:
        if r.name.startswith("release"):
            say(f"  release {r.outcome or r.state}: {r.detail}")
    report = audit.verify(settings)
    say(f"  {report}")
    repo = bare_repo(settings, say)
    say(f"  Prefect UI: {settings.url('prefect')}/runs   MLflow model: "
        f"{settings.url('mlflow')}/#/models/digits")
    say(f"  try: git push {repo} HEAD:main   (the post-receive hook starts a release)")
    say(f"  demo wall time {time.monotonic() - began:.0f}s")
    if not report.ok:
        raise ServiceUnavailable(str(report))
    return results
