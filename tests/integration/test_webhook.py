"""Push webhooks against the real Prefect server and workers, and a real `git push`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from suite import vault
from suite.settings import Settings
from suite.webhook.replay import DeliveryLog
from suite.webhook.server import WebhookApp, make_server
from suite.webhook.trigger import DeploymentTrigger
from suite.webhook.verify import hmac_hex
from tests.conftest import REPO, prefect_api

pytestmark = pytest.mark.integration
DEPLOYMENT = "webhook-probe/probe"


@pytest.fixture(scope="module")
def probe_deployment(platform: Settings) -> str:
    api = platform.prefect_api_url
    flow = prefect_api(api, "POST", "/flows/", json={"name": "webhook-probe"}).json()
    resp = prefect_api(api, "POST", "/deployments/", json={
        "name": "probe", "flow_id": flow["id"], "work_pool_name": "suite",
        "entrypoint": "tests/integration/probe_flow.py:probe", "path": str(REPO),
        "pull_steps": [{"prefect.deployments.steps.set_working_directory":
                        {"directory": str(REPO)}}],
        "enforce_parameter_schema": False,
    })
    assert resp.status_code in (200, 201), resp.text
    return DEPLOYMENT


@pytest.fixture(scope="module")
def hook_server(platform: Settings, probe_deployment: str, tmp_path_factory) -> Iterator[str]:
    client = vault.client(platform)
    for provider in ("github", "gitlab", "gitea"):
        vault.put_secret(client, f"webhook/{provider}", "secret", f"test-{provider}-secret")
    app = WebhookApp(
        secrets=lambda p: vault.get_secret(vault.worker_client(platform), f"webhook/{p}",
                                           "secret"),
        trigger=DeploymentTrigger(probe_deployment, platform.prefect_api_url),
        deliveries=DeliveryLog(tmp_path_factory.mktemp("wh") / "deliveries.json"),
        branches=["main"], max_body=64 * 1024,
    )
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def payload(branch: str = "main", sha: str | None = None, clone_url: str = "") -> bytes:
    repository = {"full_name": "acme/svc"} | ({"clone_url": clone_url} if clone_url else {})
    return json.dumps({"ref": f"refs/heads/{branch}", "before": "0" * 39 + "1",
                       "after": sha or uuid.uuid4().hex + "abcdefgh",
                       "repository": repository,
                       "pusher": {"login": "ann"}}).encode()


def github(body: bytes, secret: str = "test-github-secret", delivery: str | None = None):
    return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body),
            "Content-Type": "application/json"}


def flow_runs(platform: Settings) -> list[dict]:
    resp = httpx.post(f"{platform.prefect_api_url}/flow_runs/filter", timeout=10,
                      json={"flows": {"name": {"any_": ["webhook-probe"]}}})
    return resp.json()


def wait_run(platform: Settings, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{platform.prefect_api_url}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish: {run['state_type']}")


def test_github_push_starts_the_deployment_and_replay_is_refused(platform, hook_server):
    body = payload(sha="1" * 40)
    headers = github(body, delivery="gh-1")
    resp = httpx.post(f"{hook_server}/hooks/github", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["flow_run_id"]
    run = httpx.get(f"{platform.prefect_api_url}/flow_runs/{run_id}").json()
    assert run["parameters"]["git_sha"] == "1" * 40
    assert "github push by ann" in run["parameters"]["triggered_by"]
    again = httpx.post(f"{hook_server}/hooks/github", content=body, headers=headers)
    assert again.status_code == 409 and "replay" in again.json()["error"]


@pytest.mark.parametrize(
    ("provider", "make_headers"),
    [
        ("gitlab", lambda body: {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token":
                                 "test-gitlab-secret", "X-Gitlab-Event-UUID": str(uuid.uuid4())}),
        ("gitea", lambda body: {"X-Gitea-Event": "push", "X-Gitea-Delivery": str(uuid.uuid4()),
                                "X-Gitea-Signature": hmac_hex("test-gitea-secret", body)}),
    ],
)
def test_gitlab_and_gitea_pushes_start_runs(hook_server, provider, make_headers):
    body = payload()
    resp = httpx.post(f"{hook_server}/hooks/{provider}", content=body, headers=make_headers(body))
    assert resp.status_code == 202, resp.text
    assert resp.json()["flow_run_id"]


def test_bad_signature_gets_401_and_starts_nothing(platform, hook_server):
    before = len(flow_runs(platform))
    body = payload()
    resp = httpx.post(f"{hook_server}/hooks/github", content=body,
                      headers=github(body, secret="wrong"))
    assert resp.status_code == 401
    assert len(flow_runs(platform)) == before


def test_other_branch_is_ignored_and_oversize_body_refused(platform, hook_server):
    before = len(flow_runs(platform))
    body = payload(branch="feature/x")
    resp = httpx.post(f"{hook_server}/hooks/github", content=body, headers=github(body))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert "does not match the filter" in resp.json()["reason"]
    big = b"{" + b" " * (70 * 1024) + b"}"
    resp = httpx.post(f"{hook_server}/hooks/github", content=big, headers=github(big))
    assert resp.status_code == 413 and "exceeds the limit" in resp.json()["error"]
    assert len(flow_runs(platform)) == before


def test_git_push_to_bare_repo_runs_the_flow_with_the_pushed_sha(
    platform: Settings, platform_env, hook_server, tmp_path: Path
):
    bare, work = tmp_path / "svc.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    suite = [sys.executable, "-m", "suite.cli"]
    inst = subprocess.run([*suite, "hooks", "install", str(bare), "--url",
                           f"{hook_server}/hooks/gitea"], env=platform_env, capture_output=True,
                          text=True)
    assert inst.returncode == 0, inst.stderr
    git = ["git", "-C", str(work), "-c", "user.name=Ann", "-c", "user.email=ann@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "app.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    env = dict(platform_env, PATH=f"{Path(sys.executable).parent}:{platform_env.get('PATH', '')}")
    push = subprocess.run([*git, "push", "-q", str(bare), "main"], capture_output=True, text=True,
                          env=env)
    assert push.returncode == 0, push.stderr
    assert "202" in push.stderr, push.stderr  # the hook's output comes back as "remote:" lines
    runs = [r for r in flow_runs(platform) if r["parameters"].get("git_sha") == sha]
    assert len(runs) == 1
    finished = wait_run(platform, runs[0]["id"])
    assert finished["state_type"] == "COMPLETED", finished["state"]
