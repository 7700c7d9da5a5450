"""The receiver against a registry under a temporary home (written by ``Registry.register`` on
local git repositories, as `suite services add PATH` does) and a recording trigger: which pushes
start which services' runs, which are refused or ignored, and that nothing else starts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from suite.errors import ConfigError, ServiceUnavailable
from suite.services.registry import Registry
from suite.webhook.replay import DeliveryLog
from suite.webhook.server import WebhookApp
from suite.webhook.trigger import Started, parameters
from suite.webhook.verify import PushEvent, hmac_hex
from tests.unit.webhook.repos import commit_manifest, register, temp_registry

SECRET = "s"


class Recorder:
    """A trigger that records (service, parameters) and fails for the services in ``fail``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: set[str] = set()

    def __call__(self, event: PushEvent, service: str) -> Started:
        if service in self.fail:
            raise ServiceUnavailable(f"Prefect down for {service}")
        self.calls.append((service, parameters(event, service)))
        return Started(flow_run_id=f"run-{service}-{len(self.calls)}")

    @property
    def services(self) -> list[str]:
        return [s for s, _ in self.calls]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return temp_registry(tmp_path / "home")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(tmp_path: Path, registry: Registry, recorder: Recorder) -> WebhookApp:
    return WebhookApp(secrets=lambda _: SECRET, trigger=recorder,
                      deliveries=DeliveryLog(tmp_path / "deliveries.json"),
                      registrations=registry.all)


def github(app: WebhookApp, clone_url: str, branch: str = "main", sha: str = "c" * 40,
           delivery: str | None = None, ref: str | None = None) -> tuple[int, dict]:
    body = json.dumps({
        "ref": ref or f"refs/heads/{branch}", "before": "a" * 40, "after": sha,
        "repository": {"full_name": "acme/svc", "clone_url": clone_url,
                       "html_url": clone_url.removesuffix(".git")},
        "pusher": {"login": "ann"}}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": "sha256=" + hmac_hex(SECRET, body)}
    return app.handle("github", headers, body)


def test_a_push_to_the_registered_branch_starts_its_service_with_service_and_sha(
        app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    status, answer = github(app, f"file://{tmp_path}/svc", sha="d" * 40, delivery="gh-1")
    assert status == 202, answer
    assert answer["status"] == "started"
    assert answer["runs"] == [{"service": "httpbin", "status": "started",
                               "flow_run_id": "run-httpbin-1"}]
    assert (answer["git_sha"], answer["branch"], answer["ignored"]) == ("d" * 40, "main", [])
    ((service, params),) = recorder.calls
    assert service == "httpbin"
    assert params == {"service": "httpbin", "git_sha": "d" * 40,
                      "triggered_by": "github push by ann to acme/svc@main (delivery gh-1)"}


def test_unregistered_repository_gets_403_naming_it_and_how_to_register(app, registry,
                                                                         recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    status, answer = github(app, "https://github.com/acme/unknown.git", branch="dev")
    assert status == 403, answer
    assert answer["repository"] == "acme/svc"
    assert answer["register"] == ("suite services add https://github.com/acme/unknown.git "
                                  "--branch dev")
    assert "is not registered" in answer["error"]
    assert "https://github.com/acme/unknown.git" in answer["urls"]
    assert recorder.calls == []


def test_an_empty_registry_refuses_every_push(app, recorder):
    status, _ = github(app, "https://github.com/acme/svc.git")
    assert status == 403 and recorder.calls == []


def test_the_registry_is_read_at_each_request_and_a_refused_delivery_is_accepted_once_registered(
        app, registry, recorder, tmp_path):
    url = f"file://{tmp_path}/svc"
    commit_manifest(tmp_path / "svc", "httpbin")
    assert github(app, url, delivery="gh-2")[0] == 403
    register(registry, tmp_path / "svc", "httpbin")
    status, answer = github(app, url, delivery="gh-2")  # the forge's redelivery
    assert status == 202, answer
    assert recorder.services == ["httpbin"]


def test_a_push_to_another_branch_is_ignored_with_the_registered_branch(app, registry, recorder,
                                                                        tmp_path):
    register(registry, tmp_path / "svc", "httpbin", branch="release")
    status, answer = github(app, f"file://{tmp_path}/svc", branch="main")
    assert status == 200, answer
    assert answer["status"] == "ignored"
    assert answer["reason"] == "httpbin: releases from branch 'release', not 'main'"
    assert recorder.calls == []
    status, answer = github(app, f"file://{tmp_path}/svc", branch="release")
    assert status == 202 and recorder.services == ["httpbin"]


@pytest.mark.parametrize(
    ("ref", "sha", "reason"),
    [("refs/tags/v1", "c" * 40, "is not a branch"), ("refs/heads/main", "0" * 40, "was deleted")],
)
def test_tags_and_deleted_branches_of_a_registered_repository_are_ignored(
        app, registry, recorder, tmp_path, ref, sha, reason):
    register(registry, tmp_path / "svc", "httpbin")
    status, answer = github(app, f"file://{tmp_path}/svc", ref=ref, sha=sha)
    assert status == 200 and reason in answer["reason"], answer
    assert recorder.calls == []


def test_every_service_of_one_repository_on_the_pushed_branch_gets_its_own_run(
        app, registry, recorder, tmp_path):
    repo = tmp_path / "mono"
    register(registry, repo, "web")
    register(registry, repo, "worker")  # the manifest renamed on main, registered again
    register(registry, repo, "docs", branch="pages")
    status, answer = github(app, f"file://{repo}", sha="e" * 40)
    assert status == 202, answer
    assert [r["service"] for r in answer["runs"]] == ["web", "worker"]
    assert answer["ignored"] == [{"service": "docs",
                                  "reason": "releases from branch 'pages', not 'main'"}]
    assert [(s, p["service"], p["git_sha"]) for s, p in recorder.calls] == [
        ("web", "web", "e" * 40), ("worker", "worker", "e" * 40)]


def test_a_replayed_delivery_is_refused_and_starts_nothing_more(app, registry, recorder,
                                                                tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    assert github(app, f"file://{tmp_path}/svc", delivery="gh-3")[0] == 202
    status, answer = github(app, f"file://{tmp_path}/svc", delivery="gh-3")
    assert status == 409 and "replay refused" in answer["error"]
    assert recorder.services == ["httpbin"]


def test_one_failed_service_is_502_and_the_redelivery_starts_only_that_one(
        app, registry, recorder, tmp_path):
    repo = tmp_path / "mono"
    register(registry, repo, "web")
    register(registry, repo, "worker")
    recorder.fail = {"worker"}
    status, answer = github(app, f"file://{repo}", delivery="gh-4")
    assert status == 502, answer
    assert answer["failed"] == [{"service": "worker", "error": "Prefect down for worker"}]
    assert [r["service"] for r in answer["runs"]] == ["web"]
    recorder.fail = set()
    status, answer = github(app, f"file://{repo}", delivery="gh-4")
    assert status == 202, answer
    assert [r["service"] for r in answer["runs"]] == ["worker"]
    assert answer["replayed"] == ["web"]
    assert recorder.services == ["web", "worker"]
    assert github(app, f"file://{repo}", delivery="gh-4")[0] == 409


def test_the_extra_branch_filter_still_narrows(app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin", branch="dev")
    app.branches = ["main"]
    status, answer = github(app, f"file://{tmp_path}/svc", branch="dev")
    assert status == 200 and "does not match the filter" in answer["reason"]
    assert recorder.calls == []


def test_an_unreadable_registry_is_503_and_the_delivery_stays_acceptable(app, registry,
                                                                         recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    registrations = app.registrations

    def broken() -> list:
        raise ConfigError("services folder unreadable")

    app.registrations = broken
    assert github(app, f"file://{tmp_path}/svc", delivery="gh-5")[0] == 503
    app.registrations = registrations
    assert github(app, f"file://{tmp_path}/svc", delivery="gh-5")[0] == 202


def gitlab(app: WebhookApp, project: dict[str, str], branch: str = "main") -> tuple[int, dict]:
    body = json.dumps({"ref": f"refs/heads/{branch}", "checkout_sha": uuid.uuid4().hex * 2,
                       "project": {"path_with_namespace": "g/p", **project},
                       "user_username": "bo"}).encode()
    return app.handle("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET,
                                 "X-Gitlab-Event-UUID": str(uuid.uuid4())}, body)


def gitea(app: WebhookApp, repository: dict[str, str]) -> tuple[int, dict]:
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex * 2,
                       "repository": {"full_name": "team/app", **repository},
                       "pusher": {"login": "cy"}}).encode()
    return app.handle("gitea", {"X-Gitea-Event": "push", "X-Gitea-Delivery": str(uuid.uuid4()),
                                "X-Gitea-Signature": hmac_hex(SECRET, body)}, body)


def test_gitlab_and_gitea_payloads_find_the_service_by_any_of_their_urls(app, registry,
                                                                         recorder, tmp_path):
    repo = tmp_path / "svc.git"
    register(registry, repo, "httpbin")
    assert gitlab(app, {"git_http_url": str(repo), "web_url": "https://gl/g/p"})[0] == 202
    assert gitlab(app, {"git_ssh_url": "git@gl:g/p.git", "http_url": f"file://{repo}"})[0] \
        == 202
    assert gitea(app, {"clone_url": f"{repo}/", "ssh_url": "git@gitea:team/app.git"})[0] == 202
    assert gitea(app, {"clone_url": "http://gitea/team/app.git"})[0] == 403
    assert recorder.services == ["httpbin"] * 3


def test_a_second_delivery_id_for_the_same_commit_is_a_replay_not_a_second_release(
        app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    assert github(app, f"file://{tmp_path}/svc", sha="9" * 40, delivery="gh-a")[0] == 202
    status, answer = github(app, f"file://{tmp_path}/svc", sha="9" * 40, delivery="gh-b")
    assert status == 409, answer
    assert "commit " + "9" * 40 in answer["error"] and "replay refused" in answer["error"]
    assert recorder.services == ["httpbin"]
    assert github(app, f"file://{tmp_path}/svc", sha="8" * 40, delivery="gh-c")[0] == 202


def test_a_failed_start_frees_the_commit_so_a_new_delivery_of_it_is_accepted(
        app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    recorder.fail.add("httpbin")
    assert github(app, f"file://{tmp_path}/svc", sha="7" * 40, delivery="gh-d")[0] == 502
    recorder.fail.clear()
    assert github(app, f"file://{tmp_path}/svc", sha="7" * 40, delivery="gh-e")[0] == 202
    assert recorder.services == ["httpbin"]


def dated(app: WebhookApp, clone_url: str, pushed_at: object) -> tuple[int, dict]:
    body = json.dumps({
        "ref": "refs/heads/main", "before": "a" * 40, "after": uuid.uuid4().hex * 2,
        "repository": {"full_name": "acme/svc", "clone_url": clone_url, "pushed_at": pushed_at},
        "pusher": {"login": "ann"}}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": "sha256=" + hmac_hex(SECRET, body)}
    return app.handle("github", headers, body)


def test_with_a_max_age_stale_future_and_undated_pushes_are_refused_and_start_nothing(
        app, registry, recorder, tmp_path):
    register(registry, tmp_path / "svc", "httpbin")
    app.max_age, app.clock = 3600.0, lambda: 1_800_000_000.0
    url = f"file://{tmp_path}/svc"
    status, answer = dated(app, url, 1_800_000_000 - 7200)
    assert status == 403 and "7200 s old" in answer["error"] and "3600 s" in answer["error"]
    status, answer = dated(app, url, 1_800_000_000 + 900)
    assert status == 403 and "900 s in the future" in answer["error"]
    status, answer = dated(app, url, None)
    assert status == 403 and "no usable timestamp" in answer["error"]
    assert recorder.services == []
    assert dated(app, url, 1_800_000_000 - 60)[0] == 202
    assert recorder.services == ["httpbin"]
