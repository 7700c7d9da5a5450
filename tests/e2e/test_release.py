"""Whole releases on the local target, with real containers, HAProxy, Prometheus, MLflow and
Prefect. Order matters: the module starts with the first release (v1 becomes stable)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import httpx
import pytest

from suite import audit
from suite.load import LoadGenerator, default_rows
from suite.platform import manager, process
from suite.settings import Settings
from tasks.release import current_champion
from tasks.targets.local import LocalTarget
from tests.conftest import REPO, prefect_api
from tests.e2e.conftest import in_thread, release, train

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def v1(release_platform: Settings) -> Iterator[dict]:
    version = train(seed=0)
    out = release(synthetic_load_rps=20)
    assert out["outcome"] == "promoted", out
    assert current_champion(release_platform, "digits") == version
    yield out
    LocalTarget(release_platform).teardown("model-server")  # leave the router empty


def stage_seconds(out: dict, prefix: str) -> float:
    return next(v for k, v in out["stages"].items() if k.startswith(prefix))


def test_first_release_is_stable_and_serves(release_platform: Settings, v1):
    target = LocalTarget(release_platform).status("model-server")
    assert target.stable is not None and target.canary is None
    assert len(target.instances["stable"]) == 2
    resp = httpx.post(f"{release_platform.url('haproxy')}/predict",
                      json={"inputs": default_rows(3)}, timeout=10)
    assert resp.status_code == 200


def test_good_canary_passes_every_step_and_is_promoted(release_platform: Settings, v1):
    version = train(seed=1)
    out = release(synthetic_load_rps=20)
    assert out["outcome"] == "promoted", out["reason"]
    assert out["scores"] and all(s >= 95 for s in out["scores"])
    assert current_champion(release_platform, "digits") == version
    assert out["champion_before"] != version
    status = LocalTarget(release_platform).status("model-server")
    assert status.stable is not None and status.stable.model_version == version
    assert status.canary is None and status.canary_weight == 0
    assert out["load_failed"] == 0, "the synthetic load lost requests"


def test_bad_canary_is_rolled_back_within_failure_limit(release_platform: Settings, v1):
    before = current_champion(release_platform, "digits")
    train(seed=2)
    out = release(synthetic_load_rps=20, fault_error_ratio=0.5)
    assert out["outcome"] == "rolled_back", out["reason"]
    assert "success-rate" in out["reason"] or "errors" in out["reason"]
    # success-rate: failure_limit 2, interval 2 s -> at most 3 measurements (+ query time)
    assert stage_seconds(out, "step 3: analysis") < 15
    assert current_champion(release_platform, "digits") == before
    status = LocalTarget(release_platform).status("model-server")
    assert status.canary is None and status.canary_weight == 0


def test_killed_canary_rolls_back_and_stable_loses_no_request(release_platform: Settings, v1):
    from suite import engine

    train(seed=3)
    load = LoadGenerator(f"{release_platform.url('haproxy')}/predict", 20, 600,
                         default_rows()).start()
    thread, box = in_thread(lambda: release())
    target = LocalTarget(release_platform)
    deadline = time.monotonic() + 300
    killed = []
    while time.monotonic() < deadline and not killed:
        status = target.status("model-server")
        canaries = status.instances.get("canary", ())
        if canaries and status.canary_weight > 0:
            time.sleep(4)  # inside the first analysis step
            containers = [engine.client(release_platform).containers.get(i.container)
                          for i in canaries]
            for container in containers:  # the rollback may remove the others first
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    container.kill()
                killed.append(container.name)
        time.sleep(0.5)
    thread.join(timeout=300)
    report = load.stop()
    assert killed, "the canary never started"
    assert "error" not in box, box.get("error")
    out = box["result"]
    assert out["outcome"] == "rolled_back"
    assert "not running" in out["reason"]
    assert report.failed == 0, report.summary()
    assert target.status("model-server").canary is None


def test_marginal_pauses_until_a_human_approves(release_platform: Settings, v1):
    from prefect.flow_runs import resume_flow_run

    train(seed=4)
    thread, box = in_thread(lambda: release(
        synthetic_load_rps=20, policy_path=str(HERE / "short-release.yaml"),
        analysis_template=str(HERE / "marginal-canary.yaml")))
    api = release_platform.prefect_api_url
    paused = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and paused is None and thread.is_alive():
        runs = prefect_api(api, "POST", "/flow_runs/filter", json={
            "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}).json()
        paused = runs[0]["id"] if runs else None
        time.sleep(1)
    assert paused, f"the run never paused: {box}"
    resume_flow_run(paused, run_input={"decision": "approve", "approver": "alice",
                                       "reason": "latency is within budget"})
    thread.join(timeout=240)
    assert "error" not in box, box.get("error")
    assert box["result"]["outcome"] == "promoted"
    approvals = [r for r in audit.trail(release_platform).records()
                 if r.action == "canary.approval"]
    assert approvals and approvals[-1].actor == "alice" and approvals[-1].outcome == "approve"


def test_blue_green_previews_switches_and_finalizes(release_platform: Settings, v1):
    version = train(seed=5)
    out = release(strategy="blue-green", synthetic_load_rps=20)
    assert out["outcome"] == "promoted", out["reason"]
    assert {"deploy-preview", "switch", "finalize"} <= set(out["stages"])
    status = LocalTarget(release_platform).status("model-server")
    assert status.stable is not None and status.stable.model_version == version
    assert status.canary is None and "previous" not in status.instances
    assert out["load_failed"] == 0


def test_rolling_replaces_replicas_without_losing_requests(release_platform: Settings, v1):
    version = train(seed=6)
    out = release(strategy="rolling", synthetic_load_rps=20)
    assert out["outcome"] == "promoted", out["reason"]
    assert "deploy-rolling" in out["stages"]
    status = LocalTarget(release_platform).status("model-server")
    assert status.stable is not None and status.stable.model_version == version
    assert len(status.instances["stable"]) == 2
    assert out["load_failed"] == 0


def test_forged_webhook_gets_401_and_starts_nothing(release_platform: Settings, v1):
    api = release_platform.prefect_api_url
    count = len(prefect_api(api, "POST", "/flow_runs/filter", json={}).json())
    body = b'{"ref": "refs/heads/main", "after": "' + b"a" * 40 + b'"}'
    resp = httpx.post(f"{release_platform.url('webhook')}/hooks/github", content=body, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert resp.status_code == 401
    assert len(prefect_api(api, "POST", "/flow_runs/filter", json={}).json()) == count


def test_git_push_releases_on_the_surviving_worker(release_platform: Settings, v1,
                                                   platform_env, tmp_path: Path):
    rec = process.read_record(release_platform.dir("run"), "worker-1")
    assert rec is not None
    os.killpg(rec.pid, signal.SIGKILL)  # one of two workers dies while idle
    try:
        bare = tmp_path / "suite.git"  # empty: the push creates main, so the hook runs
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        hook = subprocess.run([str(REPO / ".venv/bin/suite"), "hooks", "install", str(bare)],
                              env=platform_env, capture_output=True, text=True)
        assert hook.returncode == 0, hook.stderr
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        push = subprocess.run(["git", "-C", str(REPO), "push", "-q", str(bare),
                               f"{sha}:refs/heads/main", "--force"], env=platform_env,
                              capture_output=True, text=True)
        assert push.returncode == 0 and "202" in push.stderr, push.stderr
        api = release_platform.prefect_api_url
        runs = prefect_api(api, "POST", "/flow_runs/filter", json={
            "flows": {"name": {"any_": ["release"]}},
            "flow_runs": {"tags": {"all_": ["git-push"]}}}).json()
        assert len(runs) == 1 and runs[0]["parameters"]["git_sha"] == sha
        deadline = time.monotonic() + 420
        state = runs[0]
        while time.monotonic() < deadline:
            state = prefect_api(api, "GET", f"/flow_runs/{runs[0]['id']}").json()
            if state["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
        assert state["state_type"] == "COMPLETED", state["state"]
    finally:
        manager.up(release_platform)  # worker-1 back for whatever runs next
