"""Push webhooks against the real Prefect server and workers, and a real `git push`: pushes of
registered repositories start one run per registered service, with its name and the pushed sha;
an unregistered repository is refused (403) and no flow run exists for its push."""

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
from suite.services.registry import Registration, Registry
from suite.settings import Settings
from suite.webhook.replay import DeliveryLog
from suite.webhook.server import WebhookApp, make_server
from suite.webhook.trigger import DeploymentTrigger
from suite.webhook.verify import hmac_hex
from tests.conftest import flow_deployment, prefect_api
from tests.unit.webhook.repos import commit_manifest, register

pytestmark = pytest.mark.integration
DEPLOYMENT = "webhook-probe/probe"


@pytest.fixture(scope="module")
def probe_deployment(platform: Settings) -> str:
    flow_deployment(platform.prefect_api_url, "webhook-probe", "probe",
                    "tests/integration/probe_flow.py:probe")
    return DEPLOYMENT


@pytest.fixture(scope="module")
def services(platform: Settings, tmp_path_factory) -> Iterator[dict[str, Registration]]:
    """Registered in the platform's own registry (as `suite services add PATH` does): one
    repository with one service, one holding two services on main."""
    registry = Registry(platform)
    root = tmp_path_factory.mktemp("wh-repos")
    regs = {"wh-svc": register(registry, root / "svc", "wh-svc"),
            "wh-web": register(registry, root / "mono", "wh-web"),
            "wh-worker": register(registry, root / "mono", "wh-worker")}
    yield regs
    for name in regs:
        registry.remove(name)


def url(reg: Registration) -> str:
    """The clone URL a forge (here: the local hook) sends for a registered repository."""
    return f"file://{reg.repository}"


@pytest.fixture(scope="module")
def hook_server(platform: Settings, probe_deployment: str, services: dict,
                tmp_path_factory) -> Iterator[str]:
    client = vault.client(platform)
    for provider in ("github", "gitlab", "gitea"):
        vault.put_secret(client, f"webhook/{provider}", "secret", f"test-{provider}-secret")
    app = WebhookApp(
        secrets=lambda p: vault.get_secret(vault.worker_client(platform), f"webhook/{p}",
                                           "secret"),
        trigger=DeploymentTrigger(probe_deployment, platform.prefect_api_url),
        deliveries=DeliveryLog(tmp_path_factory.mktemp("wh") / "deliveries.sqlite3"),
        registrations=Registry(platform).all, max_body=64 * 1024, max_age=3600.0,
    )
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def payload(clone_url: str, branch: str = "main", sha: str | None = None) -> bytes:
    repository = {"full_name": "acme/svc", "clone_url": clone_url,
                  "pushed_at": int(time.time())}
    return json.dumps({"ref": f"refs/heads/{branch}", "before": "0" * 39 + "1",
                       "after": sha or uuid.uuid4().hex + "abcdefgh",
                       "repository": repository,
                       "pusher": {"login": "ann"}}).encode()


def post(url: str, **kwargs) -> httpx.Response:
    """A forge waits about 10 s; on this shared 2-core machine a push starting two runs can
    take longer, so the tests wait 30 s (per-service replay claims make a forge's timeout safe:
    its redelivery starts nothing twice)."""
    return httpx.post(url, timeout=30, **kwargs)


def github(body: bytes, secret: str = "test-github-secret", delivery: str | None = None):
    return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body),
            "Content-Type": "application/json"}


def flow_runs(platform: Settings) -> list[dict]:
    resp = prefect_api(platform.prefect_api_url, "POST", "/flow_runs/filter",
                       json={"flows": {"name": {"any_": ["webhook-probe"]}}})
    return resp.json()


def wait_run(platform: Settings, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = prefect_api(platform.prefect_api_url, "GET", f"/flow_runs/{run_id}").json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish: {run['state_type']}")


def runs_of(platform: Settings, sha: str) -> list[dict]:
    return [r for r in flow_runs(platform) if (r["parameters"] or {}).get("git_sha") == sha]


def test_github_push_starts_the_registered_service_and_replay_is_refused(platform, hook_server,
                                                                         services):
    body = payload(url(services["wh-svc"]), sha="1" * 40)
    headers = github(body, delivery="gh-1")
    resp = post(f"{hook_server}/hooks/github", content=body, headers=headers)
    assert resp.status_code == 202, resp.text
    ((started,),) = [resp.json()["runs"]]
    assert started["service"] == "wh-svc"
    run = prefect_api(platform.prefect_api_url, "GET",
                      f"/flow_runs/{started['flow_run_id']}").json()
    assert run["parameters"] == {
        "service": "wh-svc", "git_sha": "1" * 40,
        "triggered_by": "github push by ann to acme/svc@main (delivery gh-1)"}
    again = post(f"{hook_server}/hooks/github", content=body, headers=headers)
    assert again.status_code == 409 and "replay" in again.json()["error"]
    assert len(runs_of(platform, "1" * 40)) == 1


@pytest.mark.parametrize(
    ("provider", "make_headers"),
    [
        ("gitlab", lambda body: {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token":
                                 "test-gitlab-secret", "X-Gitlab-Event-UUID": str(uuid.uuid4())}),
        ("gitea", lambda body: {"X-Gitea-Event": "push", "X-Gitea-Delivery": str(uuid.uuid4()),
                                "X-Gitea-Signature": hmac_hex("test-gitea-secret", body)}),
    ],
)
def test_gitlab_and_gitea_pushes_start_runs(hook_server, services, provider, make_headers):
    body = payload(url(services["wh-svc"]))
    resp = post(f"{hook_server}/hooks/{provider}", content=body, headers=make_headers(body))
    assert resp.status_code == 202, resp.text
    assert [r["service"] for r in resp.json()["runs"]] == ["wh-svc"]
    assert resp.json()["runs"][0]["flow_run_id"]


def test_a_repository_with_two_services_starts_one_run_for_each(platform, hook_server,
                                                                services):
    sha = "2" * 40
    body = payload(url(services["wh-web"]), sha=sha)
    resp = post(f"{hook_server}/hooks/github", content=body, headers=github(body))
    assert resp.status_code == 202, resp.text
    assert sorted(r["service"] for r in resp.json()["runs"]) == ["wh-web", "wh-worker"]
    assert sorted(r["parameters"]["service"] for r in runs_of(platform, sha)) == [
        "wh-web", "wh-worker"]


def test_unregistered_repository_gets_403_and_no_flow_run_exists(platform, hook_server,
                                                                 services, tmp_path):
    sha, fence = "3" * 40, "4" * 40
    body = payload("https://github.com/acme/not-registered.git", sha=sha)
    resp = post(f"{hook_server}/hooks/github", content=body, headers=github(body))
    assert resp.status_code == 403, resp.text
    answer = resp.json()
    assert answer["repository"] == "acme/svc"
    assert answer["register"].startswith(
        "suite services add https://github.com/acme/not-registered.git")
    assert "is not registered" in answer["error"]
    # a valid push after it: once its run exists, the refused one's would exist too
    fenced = payload(url(services["wh-svc"]), sha=fence)
    assert post(f"{hook_server}/hooks/github", content=fenced,
                      headers=github(fenced)).status_code == 202
    assert len(runs_of(platform, fence)) == 1
    assert runs_of(platform, sha) == []


def test_bad_signature_gets_401_and_starts_nothing(platform, hook_server, services):
    before = len(flow_runs(platform))
    body = payload(url(services["wh-svc"]))
    resp = post(f"{hook_server}/hooks/github", content=body,
                      headers=github(body, secret="wrong"))
    assert resp.status_code == 401
    assert len(flow_runs(platform)) == before


def test_other_branch_is_ignored_and_oversize_body_refused(platform, hook_server, services):
    before = len(flow_runs(platform))
    body = payload(url(services["wh-svc"]), branch="feature/x")
    resp = post(f"{hook_server}/hooks/github", content=body, headers=github(body))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert resp.json()["reason"] == "wh-svc: releases from branch 'main', not 'feature/x'"
    big = b"{" + b" " * (70 * 1024) + b"}"
    resp = post(f"{hook_server}/hooks/github", content=big, headers=github(big))
    assert resp.status_code == 413 and "exceeds the limit" in resp.json()["error"]
    assert len(flow_runs(platform)) == before


def test_git_push_to_bare_repo_runs_the_flow_once_its_service_is_registered(
    platform: Settings, platform_env, hook_server, tmp_path: Path
):
    """A plain `git push` through the post-receive hook: refused (403, no run) while the bare
    repository is not registered; after `suite services add` of it, the push runs its service."""
    bare, work = tmp_path / "svc.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    suite = [sys.executable, "-m", "suite.cli"]
    inst = subprocess.run([*suite, "hooks", "install", str(bare), "--url",
                           f"{hook_server}/hooks/gitea"], env=platform_env, capture_output=True,
                          text=True)
    assert inst.returncode == 0, inst.stderr
    git = ["git", "-C", str(work), "-c", "user.name=Ann", "-c", "user.email=ann@example.com"]
    env = dict(platform_env, PATH=f"{Path(sys.executable).parent}:{platform_env.get('PATH', '')}")
    refused = commit_manifest(work, "wh-bare")
    push = subprocess.run([*git, "push", "-q", str(bare), "main"], capture_output=True, text=True,
                          env=env)
    assert push.returncode == 0, push.stderr  # the hook never fails the push
    assert "403" in push.stderr and "suite services add" in push.stderr, push.stderr
    registry = Registry(platform)
    registry.register(str(bare), "main")
    try:
        (work / "app.py").write_text("print('v2')\n")
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "v2"], check=True)
        sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        push = subprocess.run([*git, "push", "-q", str(bare), "main"], capture_output=True,
                              text=True, env=env)
        assert push.returncode == 0, push.stderr
        assert "202" in push.stderr, push.stderr  # the hook's output comes back as "remote:"
        runs = runs_of(platform, sha)
        assert [r["parameters"]["service"] for r in runs] == ["wh-bare"]
        finished = wait_run(platform, runs[0]["id"])
        assert finished["state_type"] == "COMPLETED", finished["state"]
        assert runs_of(platform, refused) == []
    finally:
        registry.remove("wh-bare")
