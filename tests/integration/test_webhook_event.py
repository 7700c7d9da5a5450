"""Event mode end to end: a signed push of a registered service's repository → `suite webhook
serve --mode event` (a real process, reading the platform's registry) → `git.push` event naming
the service → the release deployment's trigger from prefect.yaml (registered by `suite deploy`, as
`suite up` does) → a flow run of `release/release` carrying the service and the pushed sha.

No release may run: the queue of the release deployment is paused while pushes are made, every
run they create is cancelled before it is resumed, and the state history is checked afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from suite import vault
from suite.deployments import deploy
from suite.platform.services.prefect import WORK_POOL
from suite.platform.services.webhook import WebhookService
from suite.services.registry import Registration, Registry
from suite.settings import Settings
from tests.conftest import free_port, prefect_api
from tests.integration.test_webhook import github, payload
from tests.unit.webhook.repos import register

pytestmark = pytest.mark.integration
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SERVICE = "wh-event"
UNREGISTERED = "https://gitea.example.com/acme/not-registered.git"


@pytest.fixture(scope="module")
def service(platform: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registration]:
    registry = Registry(platform)
    reg = register(registry, tmp_path_factory.mktemp("wh-event-repo") / "svc", SERVICE)
    yield reg
    registry.remove(SERVICE)


@pytest.fixture(scope="module")
def release_deployment(platform: Settings) -> dict:
    deploy(platform, force=True)  # what `suite up` does after the services are healthy
    return prefect(platform, "GET", "/deployments/name/release/release").json()


@pytest.fixture(scope="module")
def event_hook(platform: Settings, release_deployment: dict, service: Registration,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The receiver as the platform runs it (same environment: worker AppRole), in event mode."""
    client = vault.client(platform)
    for provider in ("github", "gitlab", "gitea"):
        vault.put_secret(client, f"webhook/{provider}", "secret", f"test-{provider}-secret")
    port = free_port()
    log = tmp_path_factory.mktemp("wh-event") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "suite.cli", "webhook", "serve", "--mode", "event",
             "--port", str(port)],
            env=WebhookService(platform).env(), stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _answers(f"{url}/healthz"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def prefect(platform: Settings, method: str, path: str, json: object = None,
            params: dict[str, str] | None = None) -> httpx.Response:
    resp = prefect_api(platform.prefect_api_url, method, path, json=json, params=params)
    resp.raise_for_status()
    return resp


def release_runs(platform: Settings, sha: str) -> list[dict]:
    resp = prefect(platform, "POST", "/flow_runs/filter",
                   json={"deployments": {"name": {"any_": ["release"]}}})
    return [r for r in resp.json() if (r["parameters"] or {}).get("git_sha") == sha]


def wait_release_run(platform: Settings, sha: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = release_runs(platform, sha)
        if runs:
            assert len(runs) == 1, runs
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no release flow run with git_sha {sha} within {timeout:.0f} s")


def cancel(platform: Settings, run_id: str) -> dict:
    prefect(platform, "POST", f"/flow_runs/{run_id}/set_state",
            json={"state": {"type": "CANCELLED", "name": "Cancelled",
                            "message": "webhook event-mode test: no release"}, "force": True})
    return prefect(platform, "GET", f"/flow_runs/{run_id}").json()


def state_types(platform: Settings, run_id: str) -> set[str]:
    resp = prefect(platform, "GET", "/flow_run_states/", params={"flow_run_id": run_id})
    return {s["type"] for s in resp.json()}


@contextmanager
def release_queue_paused(platform: Settings, deployment: dict) -> Iterator[set[str]]:
    """Pause the release deployment's work queue; on exit cancel every still-open run of the
    shas added to the yielded set, then resume the queue."""
    queue = f"/work_pools/{WORK_POOL}/queues/{deployment['work_queue_name']}"
    prefect(platform, "PATCH", queue, json={"is_paused": True})
    shas: set[str] = set()
    try:
        yield shas
    finally:
        try:
            for sha in shas:
                for run in release_runs(platform, sha):
                    if run["state_type"] not in TERMINAL:
                        cancel(platform, run["id"])
        finally:
            prefect(platform, "PATCH", queue, json={"is_paused": False})


def clone_url(reg: Registration) -> str:
    return f"file://{reg.repository}"


def push(hook: str, reg: Registration | None, sha: str, branch: str = "main",
         signed: bool = True) -> httpx.Response:
    """A push of ``reg``'s repository, or of an unregistered one when None."""
    body = payload(clone_url(reg) if reg else UNREGISTERED, branch=branch, sha=sha)
    headers = github(body)
    if not signed:
        del headers["X-Hub-Signature-256"]
    return httpx.post(f"{hook}/hooks/github", content=body, headers=headers, timeout=30)


def new_sha() -> str:
    return uuid.uuid4().hex + "e7e7e7e7"


def test_signed_push_emits_git_push_and_the_trigger_starts_release_of_the_service(
    platform: Settings, release_deployment: dict, event_hook: str, service: Registration
):
    sha = new_sha()
    with release_queue_paused(platform, release_deployment) as pushed:
        pushed.add(sha)
        began = time.monotonic()
        resp = push(event_hook, service, sha)
        assert resp.status_code == 202, resp.text
        answer = resp.json()
        assert answer["status"] == "emitted", answer
        ((emitted,),) = [answer["runs"]]
        assert emitted["service"] == SERVICE and emitted["event"] == "git.push", answer
        assert emitted["automations"], answer  # the release deployment's trigger reacts
        run = wait_release_run(platform, sha)
        latency = time.monotonic() - began
        assert run["deployment_id"] == release_deployment["id"]
        assert run["parameters"]["service"] == SERVICE
        assert run["parameters"]["git_sha"] == sha
        assert "repository" not in run["parameters"]  # the flow reads it from the registry
        assert run["parameters"]["triggered_by"] == "git.push event from ann (acme/svc@main)"
        assert run["state_type"] == "SCHEDULED", run["state"]  # its queue is paused
        cancelled = cancel(platform, run["id"])
        assert cancelled["state_type"] == "CANCELLED", cancelled["state"]
    # the queue runs again: a worker polls every worker_query_seconds; the run stays cancelled
    time.sleep(platform.worker_query_seconds + 2)
    after = prefect(platform, "GET", f"/flow_runs/{run['id']}").json()
    assert after["state_type"] == "CANCELLED", after["state"]
    assert state_types(platform, run["id"]) <= {"SCHEDULED", "CANCELLED"}
    assert latency < 30, f"push → flow run took {latency:.1f} s"


def test_unsigned_other_branch_and_unregistered_pushes_emit_nothing_and_start_no_release(
    platform: Settings, release_deployment: dict, event_hook: str, service: Registration
):
    unsigned, other_branch, unregistered, fence = new_sha(), new_sha(), new_sha(), new_sha()
    with release_queue_paused(platform, release_deployment) as pushed:
        pushed.update({unsigned, other_branch, unregistered, fence})
        resp = push(event_hook, service, unsigned, signed=False)
        assert resp.status_code == 401 and "X-Hub-Signature-256" in resp.json()["error"]
        resp = push(event_hook, service, other_branch, branch="feature/x")
        assert resp.status_code == 200 and resp.json()["status"] == "ignored", resp.text
        assert resp.json()["reason"] == f"{SERVICE}: releases from branch 'main', not 'feature/x'"
        resp = push(event_hook, None, unregistered)
        assert resp.status_code == 403, resp.text
        assert resp.json()["register"] == f"suite services add {UNREGISTERED} --branch main"
        # a valid push after them: once its run exists, theirs would exist too
        assert push(event_hook, service, fence).status_code == 202
        cancel(platform, wait_release_run(platform, fence)["id"])
        assert release_runs(platform, unsigned) == []
        assert release_runs(platform, other_branch) == []
        assert release_runs(platform, unregistered) == []


def test_receiver_refuses_with_502_when_no_automation_reacts(
    platform: Settings, release_deployment: dict, event_hook: str, service: Registration
):
    """Without an enabled trigger the event would start nothing: the push is refused, and its
    delivery id forgotten so the forge's redelivery is accepted once the trigger is back."""
    automations = [a for a in prefect(platform, "POST", "/automations/filter", json={}).json()
                   if a["enabled"] and any(act.get("deployment_id") == release_deployment["id"]
                                           for act in a["actions"])]
    assert automations, "prefect.yaml's release trigger was not registered as an automation"
    sha = new_sha()
    body = payload(clone_url(service), sha=sha)
    headers = github(body)
    with release_queue_paused(platform, release_deployment) as pushed:
        pushed.add(sha)
        for automation in automations:
            prefect(platform, "PATCH", f"/automations/{automation['id']}",
                    json={"enabled": False})
        try:
            resp = httpx.post(f"{event_hook}/hooks/github", content=body, headers=headers,
                              timeout=30)
        finally:
            for automation in automations:
                prefect(platform, "PATCH", f"/automations/{automation['id']}",
                        json={"enabled": True})
        assert resp.status_code == 502, resp.text
        assert "no enabled automation" in resp.json()["error"]
        assert "suite deploy" in resp.json()["error"]
        again = httpx.post(f"{event_hook}/hooks/github", content=body, headers=headers,
                           timeout=30)
        assert again.status_code == 202, again.text  # the same delivery id, now accepted
        cancel(platform, wait_release_run(platform, sha)["id"])

