"""The git.push event against the release trigger of prefect.yaml, judged by Prefect's own
trigger schema: a drift between what the webhook emits and what the trigger expects fails here."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import yaml

from suite.webhook.events import git_push_event, payload, reacting
from suite.webhook.verify import PushEvent
from tests.conftest import REPO

EVENT = PushEvent(provider="gitea", delivery="d-1", repository="local/svc", ref="refs/heads/main",
                  branch="main", before="a" * 40, after="b" * 40, pusher="ann", deleted=False,
                  clone_url="file:///srv/git/svc.git")


def release_trigger() -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    release = next(d for d in spec["deployments"] if d["name"] == "release")
    (trigger,) = release["triggers"]
    return trigger


def automation(name: str = "release__automation_1", enabled: bool = True,
               **trigger: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "enabled": enabled,
            "trigger": {"type": "event", "posture": "Reactive", **trigger},
            "actions": [{"type": "do-nothing"}]}


def from_prefect_yaml(**override: Any) -> dict[str, Any]:
    spec = release_trigger()
    return automation(**{"match": spec["match"], "expect": spec["expect"], **override})


def test_release_trigger_of_prefect_yaml_covers_the_emitted_event():
    body = git_push_event(EVENT, "svc")
    assert reacting([from_prefect_yaml()], body) == ["release__automation_1"]


def test_release_trigger_templates_read_only_payload_keys_the_webhook_sends():
    templates = " ".join(str(v) for v in release_trigger()["parameters"].values())
    keys = set(re.findall(r"event\.payload\.(\w+)", templates))
    assert keys and keys <= set(payload(EVENT, "svc")), keys - set(payload(EVENT, "svc"))


def test_release_trigger_passes_the_service_of_the_event():
    """The release flow takes a registered service's name and reads repository and branch from
    the registry: the trigger must hand it ``event.payload.service``."""
    params = release_trigger()["parameters"]
    assert params.get("service") == "{{ event.payload.service }}", params
    assert "repository" not in params, params


@pytest.mark.parametrize(
    ("case", "candidate"),
    [
        ("disabled", from_prefect_yaml(enabled=False)),
        ("another event", from_prefect_yaml(expect=["git.tag"])),
        ("another resource", from_prefect_yaml(match={"prefect.resource.id": "svn.repo.*"})),
        ("proactive posture", from_prefect_yaml(posture="Proactive", within=60)),
        ("unreadable trigger type", {"name": "x", "enabled": True,
                                     "trigger": {"type": "from-the-future"}, "actions": []}),
    ],
)
def test_no_automation_reacts(case, candidate):
    assert reacting([candidate], git_push_event(EVENT, "svc")) == [], case


def test_wildcard_expect_and_compound_triggers_react():
    wildcard = from_prefect_yaml(name="any-git", expect=["git.*"])
    compound = {"id": str(uuid.uuid4()), "name": "compound", "enabled": True,
                "actions": [{"type": "do-nothing"}],
                "trigger": {"type": "compound", "require": "any", "within": 0, "triggers": [
                    {"type": "event", "posture": "Reactive", "expect": ["git.push"],
                     "match": {"prefect.resource.id": "git.repo.*"}}]}}
    assert reacting([wildcard, compound], git_push_event(EVENT, "svc")) == ["any-git", "compound"]


def test_event_body_names_the_repository_and_the_service_and_carries_the_push():
    body = git_push_event(EVENT, "web")
    assert body["event"] == "git.push"
    assert body["resource"]["prefect.resource.id"] == "git.repo.local/svc"
    assert body["related"] == [{"prefect.resource.id": "suite.service.web",
                                "prefect.resource.role": "service",
                                "prefect.resource.name": "web"}]
    assert body["payload"]["service"] == "web"
    assert body["payload"]["after"] == "b" * 40
    assert body["payload"]["clone_url"] == "file:///srv/git/svc.git"


def test_each_service_of_one_push_gets_its_own_event():
    web, worker = git_push_event(EVENT, "web"), git_push_event(EVENT, "worker")
    assert web["id"] != worker["id"]
    assert (web["payload"]["service"], worker["payload"]["service"]) == ("web", "worker")
    assert reacting([from_prefect_yaml()], worker) == ["release__automation_1"]
