"""Pure checks of webhook deliveries: signature, event type, payload → :class:`PushEvent`.

GitHub signs the body with HMAC-SHA256 (``X-Hub-Signature-256: sha256=<hex>``), Gitea the same
without the prefix (``X-Gitea-Signature``), GitLab sends the shared token itself
(``X-Gitlab-Token``). Every comparison is constant-time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROVIDERS = ("github", "gitlab", "gitea")
ZERO_SHA = "0" * 40


class Rejected(Exception):
    """A delivery that must start nothing; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PushEvent:
    provider: str
    delivery: str
    repository: str
    ref: str
    branch: str
    before: str
    after: str
    pusher: str
    deleted: bool
    clone_url: str = ""
    #: every URL the payload gives for the repository (clone, web, ssh), the first one the
    #: clone URL: what the registry is searched by
    urls: tuple[str, ...] = ()


def _h(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    if provider == "github":
        given = _h(headers, "X-Hub-Signature-256")
        if not given.startswith("sha256="):
            raise Rejected(401, "missing or malformed X-Hub-Signature-256 (expected sha256=<hex>)")
        ok = hmac.compare_digest(given[7:], hmac_hex(secret, body))
    elif provider == "gitea":
        given = _h(headers, "X-Gitea-Signature")
        if not given:
            raise Rejected(401, "missing X-Gitea-Signature")
        ok = hmac.compare_digest(given, hmac_hex(secret, body))
    elif provider == "gitlab":
        given = _h(headers, "X-Gitlab-Token")
        if not given:
            raise Rejected(401, "missing X-Gitlab-Token")
        ok = hmac.compare_digest(given.encode(), secret.encode())
    else:
        raise Rejected(404, f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    if not ok:
        raise Rejected(401, f"{provider} signature does not match the secret in Vault")


def delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    name = {
        "github": "X-GitHub-Delivery",
        "gitea": "X-Gitea-Delivery",
        "gitlab": "X-Gitlab-Event-UUID",
    }[provider]
    value = _h(headers, name) or (_h(headers, "Idempotency-Key") if provider == "gitlab" else "")
    if not value:
        raise Rejected(400, f"missing {name} header: a delivery id is required to refuse replays")
    return value


def event_type(provider: str, headers: Mapping[str, str]) -> str:
    name = {"github": "X-GitHub-Event", "gitea": "X-Gitea-Event", "gitlab": "X-Gitlab-Event"}
    return _h(headers, name[provider])


def is_push(provider: str, headers: Mapping[str, str]) -> bool:
    kind = event_type(provider, headers)
    return kind == "Push Hook" if provider == "gitlab" else kind == "push"


def parse_push(provider: str, delivery: str, body: bytes) -> PushEvent:
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(400, f"body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise Rejected(400, "body is not a JSON object")
    ref = data.get("ref")
    after = data.get("after") or data.get("checkout_sha") or ""
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise Rejected(422, f"push payload has no valid 'ref' (got {ref!r})")
    if not isinstance(after, str):
        raise Rejected(422, "push payload has no valid 'after' commit")
    repo = data.get("repository") or data.get("project") or {}
    name = (repo.get("full_name") or repo.get("path_with_namespace") or repo.get("name")
            if isinstance(repo, dict) else None) or "unknown"
    pusher_obj = data.get("pusher") or data.get("user_username") or data.get("user_name") or ""
    pusher = (pusher_obj.get("name") or pusher_obj.get("login") or pusher_obj.get("username")
              if isinstance(pusher_obj, dict) else str(pusher_obj)) or "unknown"
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
    urls = repository_urls(data)
    return PushEvent(
        provider=provider, delivery=delivery, repository=str(name), ref=ref, branch=branch,
        before=str(data.get("before") or ""), after=after, pusher=str(pusher),
        deleted=bool(data.get("deleted")) or after == ZERO_SHA,
        clone_url=urls[0] if urls else "", urls=urls,
    )


#: where each forge puts the repository's URLs, clone URLs first (GitLab's ``project`` before
#: its deprecated ``repository``). GitHub and Gitea:
#: ``repository.{clone_url,html_url,ssh_url,git_url,url}``; GitLab: ``project.{git_http_url,
#: git_ssh_url,web_url,http_url,ssh_url}`` and the older ``repository.{git_http_url,
#: git_ssh_url,homepage,url}``.
URL_KEYS = ("clone_url", "git_http_url", "http_url", "ssh_url", "git_ssh_url", "git_url",
            "html_url", "web_url", "homepage", "url")


def repository_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Every distinct repository URL of a push payload, clone URLs first."""
    sections = [obj for obj in (data.get("project"), data.get("repository"))
                if isinstance(obj, Mapping)]
    found: list[str] = []
    for key in URL_KEYS:
        for obj in sections:
            value = obj.get(key)
            if isinstance(value, str) and value.strip() and value.strip() not in found:
                found.append(value.strip())
    return tuple(found)


def branch_allowed(event: PushEvent, patterns: Sequence[str]) -> str | None:
    """``None`` when the push should start a release, else the reason it should not."""
    if not event.branch:
        return f"ref {event.ref} is not a branch"
    if event.deleted:
        return f"branch {event.branch} was deleted"
    if patterns and not any(fnmatch.fnmatchcase(event.branch, p) for p in patterns):
        return f"branch {event.branch!r} does not match the filter {list(patterns)}"
    return None
