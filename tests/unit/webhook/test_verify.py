from __future__ import annotations

import json

import pytest

from suite.webhook.verify import (
    PushEvent,
    Rejected,
    branch_allowed,
    check_age,
    check_signature,
    delivery_id,
    hmac_hex,
    is_push,
    parse_push,
    push_time,
    repository_urls,
)

SECRET = "s3cret"
BODY = json.dumps({"ref": "refs/heads/main", "before": "a" * 40, "after": "b" * 40,
                   "repository": {"full_name": "acme/model"}, "pusher": {"login": "ann"}}).encode()


@pytest.mark.parametrize(
    ("provider", "headers"),
    [
        ("github", {"X-Hub-Signature-256": "sha256=" + hmac_hex(SECRET, BODY)}),
        ("gitea", {"X-Gitea-Signature": hmac_hex(SECRET, BODY)}),
        ("gitlab", {"X-Gitlab-Token": SECRET}),
    ],
)
def test_valid_signatures_pass(provider, headers):
    check_signature(provider, headers, BODY, SECRET)


@pytest.mark.parametrize(
    ("provider", "headers", "reason"),
    [
        ("github", {}, "missing X-Hub-Signature-256"),
        ("github", {"X-Hub-Signature-256": hmac_hex(SECRET, BODY)}, "does not start with"),
        ("github", {"X-Hub-Signature-256": "sha256=" + hmac_hex("other", BODY)}, "does not match"),
        ("gitea", {"X-Gitea-Signature": hmac_hex(SECRET, BODY + b" ")}, "does not match"),
        ("gitea", {}, "missing X-Gitea-Signature"),
        ("gitlab", {"X-Gitlab-Token": "nope"}, "does not match"),
        ("gitlab", {}, "missing X-Gitlab-Token"),
        ("bitbucket", {}, "unknown provider"),
    ],
)
def test_bad_signatures_are_rejected_with_reason(provider, headers, reason):
    with pytest.raises(Rejected) as info:
        check_signature(provider, headers, BODY, SECRET)
    assert info.value.status in (400, 401, 404)
    assert reason in info.value.reason


def test_header_names_are_case_insensitive():
    check_signature("github", {"x-hub-signature-256": "sha256=" + hmac_hex(SECRET, BODY)},
                    BODY, SECRET)
    assert delivery_id("github", {"x-github-delivery": "d1"}) == "d1"


def test_missing_delivery_id_is_refused():
    with pytest.raises(Rejected, match="delivery id is required"):
        delivery_id("gitea", {})


@pytest.mark.parametrize(
    ("provider", "headers", "push"),
    [("github", {"X-GitHub-Event": "push"}, True), ("github", {"X-GitHub-Event": "issues"}, False),
     ("gitlab", {"X-Gitlab-Event": "Push Hook"}, True), ("gitea", {"X-Gitea-Event": "push"}, True)],
)
def test_event_type(provider, headers, push):
    assert is_push(provider, headers) is push


def test_parse_push_reads_github_and_gitlab_shapes():
    event = parse_push("github", "d", BODY)
    assert (event.repository, event.branch, event.after, event.pusher) == (
        "acme/model", "main", "b" * 40, "ann")
    gitlab = json.dumps({"ref": "refs/heads/dev", "checkout_sha": "c" * 40,
                         "project": {"path_with_namespace": "g/p"}, "user_username": "bo"})
    event = parse_push("gitlab", "d", gitlab.encode())
    assert (event.repository, event.branch, event.after, event.pusher) == ("g/p", "dev", "c" * 40,
                                                                           "bo")


@pytest.mark.parametrize(
    ("data", "urls"),
    [
        ({"repository": {"full_name": "acme/svc", "html_url": "https://github.com/acme/svc",
                         "clone_url": "https://github.com/acme/svc.git",
                         "ssh_url": "git@github.com:acme/svc.git",
                         "git_url": "git://github.com/acme/svc.git",
                         "url": "https://github.com/acme/svc"}},
         ("https://github.com/acme/svc.git", "git@github.com:acme/svc.git",
          "git://github.com/acme/svc.git", "https://github.com/acme/svc")),
        ({"project": {"git_http_url": "https://gl/g/p.git", "git_ssh_url": "git@gl:g/p.git",
                      "web_url": "https://gl/g/p"},
          "repository": {"url": "git@gl:g/p.git", "homepage": "https://gl/g/p"}},
         ("https://gl/g/p.git", "git@gl:g/p.git", "https://gl/g/p")),
        ({"repository": {"clone_url": "  ", "html_url": 3}}, ()),
        ({"repository": "acme/svc"}, ()),
    ],
    ids=["github", "gitlab", "blank and non-string", "not a mapping"],
)
def test_repository_urls_collects_every_form_clone_urls_first(data, urls):
    assert repository_urls(data) == urls


def test_parse_push_keeps_the_clone_url_first():
    body = json.dumps({"ref": "refs/heads/main", "after": "b" * 40,
                       "repository": {"html_url": "https://g/a/b",
                                      "clone_url": "https://g/a/b.git"}}).encode()
    event = parse_push("gitea", "d", body)
    assert event.clone_url == "https://g/a/b.git"
    assert event.urls == ("https://g/a/b.git", "https://g/a/b")


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"[1]", 400), (b'{"ref": 3}', 422), (b'{"after": "x"}', 422)],
)
def test_malformed_payloads_are_4xx(body, status):
    with pytest.raises(Rejected) as info:
        parse_push("github", "d", body)
    assert info.value.status == status


def _event(ref: str, after: str = "b" * 40) -> PushEvent:
    return PushEvent("github", "d", "r", ref, ref.removeprefix("refs/heads/")
                     if ref.startswith("refs/heads/") else "", "a", after, "p", after == "0" * 40)


@pytest.mark.parametrize(
    ("ref", "patterns", "after", "allowed"),
    [
        ("refs/heads/main", ["main"], "b" * 40, True),
        ("refs/heads/release/1.2", ["release/*"], "b" * 40, True),
        ("refs/heads/dev", ["main"], "b" * 40, False),
        ("refs/heads/dev", [], "b" * 40, True),
        ("refs/tags/v1", [], "b" * 40, False),
        ("refs/heads/main", ["main"], "0" * 40, False),
    ],
)
def test_branch_filter(ref, patterns, after, allowed):
    assert (branch_allowed(_event(ref, after), patterns) is None) is allowed


@pytest.mark.parametrize(
    ("provider", "header", "value", "reason"),
    [
        ("github", "X-Hub-Signature-256", "sha256=" + "é" * 64, "non-ASCII"),
        ("github", "X-Hub-Signature-256", "sha256=abc", "of 3 characters, not 64"),
        ("github", "X-Hub-Signature-256", "sha256=" + "z" * 64, "not all hex digits"),
        ("github", "X-Hub-Signature-256", "sha1=" + "a" * 40, "does not start with 'sha256='"),
        ("gitea", "X-Gitea-Signature", "\u00ff" * 64, "non-ASCII"),
        ("gitea", "X-Gitea-Signature", "a" * 65, "of 65 characters, not 64"),
        ("gitlab", "X-Gitlab-Token", "tök", "non-ASCII"),
        ("gitlab", "X-Gitlab-Token", "x" * 5000, "over the 1024"),
    ],
)
def test_signature_headers_that_cannot_be_signatures_are_400_naming_the_header(
        provider, header, value, reason):
    with pytest.raises(Rejected) as info:
        check_signature(provider, {header: value}, BODY, SECRET)
    assert info.value.status == 400
    assert header in info.value.reason and reason in info.value.reason


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_an_empty_signature_header_is_401_missing(provider):
    header = {"github": "X-Hub-Signature-256", "gitea": "X-Gitea-Signature",
              "gitlab": "X-Gitlab-Token"}[provider]
    with pytest.raises(Rejected) as info:
        check_signature(provider, {header: "  "}, BODY, SECRET)
    assert info.value.status == 401 and f"missing {header}" in info.value.reason


def test_a_gitlab_token_of_another_length_does_not_match():
    with pytest.raises(Rejected, match="does not match"):
        check_signature("gitlab", {"X-Gitlab-Token": SECRET + "x"}, BODY, SECRET)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"repository": {"pushed_at": 1_700_000_000}}, 1_700_000_000.0),
        ({"head_commit": {"timestamp": "2023-11-14T22:13:20Z"}}, 1_700_000_000.0),
        ({"head_commit": {"timestamp": "2023-11-14T23:13:20+01:00"}}, 1_700_000_000.0),
        ({"commits": [{"timestamp": "2023-11-14T22:13:19Z"},
                      {"timestamp": "2023-11-14T22:13:20Z"}]}, 1_700_000_000.0),
        ({"head_commit": {"timestamp": "2023-11-14T22:13:20"}}, None),  # no offset: unusable
        ({"head_commit": None, "commits": []}, None),
        ({"repository": {"pushed_at": True}}, None),
        ({}, None),
    ],
)
def test_push_time_reads_each_forges_timestamp(data, expected):
    assert push_time(data) == expected


@pytest.mark.parametrize("raw", ['{"repository": {"pushed_at": NaN}}',
                                 '{"repository": {"pushed_at": Infinity}}',
                                 '{"repository": {"pushed_at": -Infinity}}',
                                 '{"repository": {"pushed_at": 1' + '0' * 400 + '}}'])
def test_push_time_that_is_not_a_time_is_unusable(raw):
    # NaN would pass every age comparison, a 400-digit int overflows float(): both read as no
    # timestamp, which check_age refuses
    assert push_time(json.loads(raw)) is None


def _dated(pushed_at: float | None) -> PushEvent:
    return PushEvent(provider="github", delivery="d", repository="acme/svc", ref="refs/heads/main",
                     branch="main", before="", after="c" * 40, pusher="ann", deleted=False,
                     pushed_at=pushed_at)


@pytest.mark.parametrize(
    ("pushed_at", "reason"),
    [
        (NOW - 3601, "3601 s old .*over the limit of 3600 s"),
        (NOW + 301, "301 s in the future .*skew of 300 s"),
        (None, "no usable timestamp .*3600 s"),
    ],
)
def test_stale_future_and_undated_pushes_are_403_naming_age_and_limit(pushed_at, reason):
    with pytest.raises(Rejected, match=reason) as info:
        check_age(_dated(pushed_at), NOW, 3600, 300)
    assert info.value.status == 403


@pytest.mark.parametrize("pushed_at", [NOW - 3600, NOW, NOW + 300])
def test_pushes_within_the_age_and_skew_pass(pushed_at):
    check_age(_dated(pushed_at), NOW, 3600, 300)
