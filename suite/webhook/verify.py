"""Pure checks of webhook deliveries: signature, event type, payload → :class:`PushEvent`.

GitHub signs the body with HMAC-SHA256 (``X-Hub-Signature-256: sha256=<hex>``), Gitea the same
without the prefix (``X-Gitea-Signature``), GitLab sends the shared token itself
(``X-Gitlab-Token``). Every comparison is constant-time.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import hmac
import json
import math
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
    #: when the push happened (epoch seconds) per the payload, None when it says nothing usable
    pushed_at: float | None = None


def _h(headers: Mapping[str, str], name: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get(name.lower(), "")


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


SIGNATURE_HEADERS = {"github": "X-Hub-Signature-256", "gitea": "X-Gitea-Signature",
                     "gitlab": "X-Gitlab-Token"}
HEX_LENGTH = 64  # hex digits of an HMAC-SHA256
MAX_TOKEN = 1024  # longest X-Gitlab-Token looked at


def _ascii_header(name: str, value: str) -> bytes:
    """The header as ASCII bytes, or 400: ``hmac.compare_digest`` raises on non-ASCII str, and
    a handler that dies on it answers nothing (http.server decodes headers as Latin-1)."""
    try:
        return value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise Rejected(400, f"{name} holds non-ASCII characters (at position {exc.start}); "
                            f"expected the ASCII value the forge sends") from exc


def check_signature(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """401 for a missing or wrong signature, 400 for one that cannot be a signature at all
    (non-ASCII, wrong length, not hex). Comparisons are on equal-length ASCII bytes only."""
    name = SIGNATURE_HEADERS.get(provider)
    if name is None:
        raise Rejected(404, f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    given = _h(headers, name).strip()
    if not given:
        raise Rejected(401, f"missing {name} header (the forge's webhook secret is not set?)")
    raw = _ascii_header(name, given)
    if provider == "gitlab":
        if len(raw) > MAX_TOKEN:
            raise Rejected(400, f"{name} is {len(raw)} bytes long, over the {MAX_TOKEN} a "
                                f"token may have")
        expected = secret.encode()
        ok = len(raw) == len(expected) and hmac.compare_digest(raw, expected)
    else:
        digest = raw
        if provider == "github":
            if not raw.startswith(b"sha256="):
                raise Rejected(400, f"{name} does not start with 'sha256=' (got "
                                    f"{given[:16]!r}...; expected sha256=<64 hex digits>)")
            digest = raw[7:]
        if len(digest) != HEX_LENGTH:
            raise Rejected(400, f"{name} has a digest of {len(digest)} characters, not "
                                f"{HEX_LENGTH}; expected the HMAC-SHA256 of the body as "
                                f"{HEX_LENGTH} hex digits")
        if not all(c in b"0123456789abcdefABCDEF" for c in digest):
            raise Rejected(400, f"{name} has a digest that is not all hex digits; expected the "
                                f"HMAC-SHA256 of the body as {HEX_LENGTH} hex digits")
        ok = hmac.compare_digest(digest.lower(), hmac_hex(secret, body).encode())
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
        clone_url=urls[0] if urls else "", urls=urls, pushed_at=push_time(data),
    )


def _epoch(value: Any) -> float | None:
    """Epoch seconds of an int/float or an ISO 8601 string with an offset; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:  # json gives NaN, Infinity and ints of any size: none of them is a time
            seconds = float(value)
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) else None
    if isinstance(value, str) and value.strip():
        try:
            when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return when.timestamp() if when.tzinfo is not None else None
    return None


def push_time(data: Mapping[str, Any]) -> float | None:
    """When the push happened: ``repository.pushed_at`` (GitHub, and `suite webhook deliver`:
    the push itself), else the newest commit time (``head_commit.timestamp``: GitHub, Gitea;
    ``commits[].timestamp``: GitLab). A commit time is when the commit was made, so an old
    commit pushed late reads old: such a push is refused by the age limit (documented)."""
    repo = data.get("repository")
    if isinstance(repo, Mapping) and (pushed := _epoch(repo.get("pushed_at"))) is not None:
        return pushed
    head = data.get("head_commit")
    if isinstance(head, Mapping) and (when := _epoch(head.get("timestamp"))) is not None:
        return when
    commits = data.get("commits")
    times = [t for c in commits if isinstance(c, Mapping)
             if (t := _epoch(c.get("timestamp"))) is not None] if isinstance(commits, list) else []
    return max(times) if times else None


def check_age(event: PushEvent, now: float, max_age: float, max_skew: float) -> None:
    """403 for a delivery older than ``max_age`` or dated more than ``max_skew`` ahead, and for
    one without a usable timestamp (it cannot be shown to be fresh: a captured delivery
    replayed after its id left the replay log would otherwise start a release again)."""
    if event.pushed_at is None:
        raise Rejected(403, "the push payload has no usable timestamp (repository.pushed_at, "
                            "head_commit.timestamp or commits[].timestamp), so its age cannot "
                            "be checked against the limit of "
                            f"{max_age:.0f} s; refused. Send one, or serve with --max-age 0 to "
                            "turn the age check off")
    age = now - event.pushed_at
    if age > max_age:
        raise Rejected(403, f"delivery is {age:.0f} s old (pushed at {event.pushed_at:.0f}), "
                            f"over the limit of {max_age:.0f} s; refused as stale. Push again, "
                            f"or raise `suite webhook serve --max-age`")
    if -age > max_skew:
        raise Rejected(403, f"delivery is dated {-age:.0f} s in the future (pushed at "
                            f"{event.pushed_at:.0f}), over the allowed clock skew of "
                            f"{max_skew:.0f} s; check the forge's and this host's clocks")


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
