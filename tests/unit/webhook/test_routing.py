"""A push's repository URLs against registrations: every form a forge sends for one repository
finds the service registered under any other form; other repositories find nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from suite.services.registry import Registration
from suite.webhook.routing import identity, registered, route, unregistered
from suite.webhook.verify import PushEvent

GITHUB_FORMS = [
    "https://github.com/Acme/Svc.git",
    "https://github.com/acme/svc",
    "https://github.com/acme/svc/",
    "git@github.com:acme/svc.git",
    "ssh://git@github.com/acme/svc.git",
    "ssh://git@github.com:22/acme/svc",
    "git://github.com/acme/svc.git",
    "https://ann:token@github.com/acme/svc.git",
]


@pytest.mark.parametrize("form", GITHUB_FORMS)
def test_every_form_of_one_github_repository_has_one_identity(form):
    assert identity(form) == "github.com/acme/svc"


@pytest.mark.parametrize(
    ("form", "key"),
    [
        ("https://gitlab.example.com/group/sub/proj.git", "gitlab.example.com/group/sub/proj"),
        ("git@gitlab.example.com:group/sub/proj.git", "gitlab.example.com/group/sub/proj"),
        ("http://gitea.local:3000/team/app.git", "gitea.local/team/app"),
        ("git@gitea.local:team/app.git", "gitea.local/team/app"),
        ("file:///srv/git/svc.git", "/srv/git/svc"),
        ("/srv/git/svc.git", "/srv/git/svc"),
        ("/srv/git/svc.git/", "/srv/git/svc"),
    ],
)
def test_gitlab_gitea_and_local_forms(form, key):
    assert identity(form) == key


def test_other_repositories_have_other_identities():
    keys = {identity(u) for u in ["https://github.com/acme/svc", "https://github.com/acme/svc2",
                                  "https://github.com/other/svc", "https://gitlab.com/acme/svc",
                                  "/srv/git/svc"]}
    assert len(keys) == 5


def test_a_relative_path_and_a_symlink_resolve_like_the_registry_does(tmp_path: Path,
                                                                      monkeypatch):
    real = tmp_path / "real.git"
    real.mkdir()
    (tmp_path / "link.git").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    assert identity("real.git") == identity(f"file://{tmp_path}/link.git") == \
        str(tmp_path / "real").lower()


def reg(service: str, repository: str, branch: str = "main") -> Registration:
    return Registration(service=service, repository=repository, branch=branch,
                        manifest_digest="sha256:x", head="a" * 40,
                        host=f"{service}.localhost", added="2026-01-01T00:00:00+00:00")


def push(*urls: str, branch: str = "main") -> PushEvent:
    return PushEvent(provider="github", delivery="d-1", repository="acme/svc",
                     ref=f"refs/heads/{branch}", branch=branch, before="a" * 40,
                     after="b" * 40, pusher="ann", deleted=False,
                     clone_url=urls[0] if urls else "", urls=urls)


REGS = [reg("web", "git@github.com:acme/svc.git"), reg("api", "https://github.com/acme/svc"),
        reg("docs", "https://github.com/acme/svc.git", branch="gh-pages"),
        reg("other", "https://github.com/acme/other.git"),
        reg("local", "/srv/git/svc.git")]


def test_a_github_push_finds_every_service_of_its_repository_under_any_registered_form():
    event = push("https://github.com/acme/svc.git", "https://github.com/acme/svc",
                 "git@github.com:acme/svc.git")
    assert [r.service for r in registered(event, REGS)] == ["web", "api", "docs"]


def test_any_one_url_of_the_payload_is_enough():
    event = push("https://mirror.example.com/acme/svc.git", "git@github.com:acme/svc.git")
    assert [r.service for r in registered(event, REGS)] == ["web", "api", "docs"]


def test_the_local_hooks_file_url_finds_the_path_registration():
    assert [r.service for r in registered(push("file:///srv/git/svc.git"), REGS)] == ["local"]


@pytest.mark.parametrize(
    "event",
    [push("https://github.com/acme/unknown.git"), push(), push("https://gitlab.com/acme/svc")],
    ids=["unknown repository", "no URL in the payload", "same path on another host"],
)
def test_unregistered_repositories_match_nothing(event):
    assert registered(event, REGS) == []


def test_route_starts_the_services_of_the_pushed_branch_and_says_why_not_the_others():
    plan = route(push("https://github.com/acme/svc"), registered(
        push("https://github.com/acme/svc"), REGS))
    assert [r.service for r in plan.start] == ["web", "api"]
    assert plan.ignored == (("docs", "releases from branch 'gh-pages', not 'main'"),)
    other = route(push(branch="feature/x"), [REGS[0]])
    assert other.start == ()
    assert other.reason == "web: releases from branch 'main', not 'feature/x'"


def test_route_compares_branches_exactly_not_as_globs():
    plan = route(push(branch="main"), [replace(REGS[0], branch="ma*")])
    assert plan.start == ()


def test_unregistered_answer_names_the_repository_and_the_command_that_registers_it():
    body = unregistered(push("https://github.com/acme/svc.git", "git@github.com:acme/svc.git",
                             branch="dev"))
    assert body["repository"] == "acme/svc"
    assert body["register"] == "suite services add https://github.com/acme/svc.git --branch dev"
    assert "is not registered" in body["error"] and body["register"] in body["error"]
    assert body["urls"] == ["https://github.com/acme/svc.git", "git@github.com:acme/svc.git"]
    bare = unregistered(push())
    assert "payload has no repository URL" in bare["error"]
    assert bare["register"] == "suite services add acme/svc --branch main"
