"""Release notifications: started, promoted, rolled back, failed, waiting for approval, posted as
one small JSON object to each URL of the service manifest's ``notifications:`` list.

A notification informs; it never decides. Delivery never raises, never retries for long and
never changes a release: a receiver that is down, slow or answering 500 is logged and audited
(``notify.failed``) and the release goes on. The payload carries only what a team needs to act
(service, release, event, outcome, reason, the run's URL): no secret, no parameter, no
environment. Webhook URLs themselves often embed a token (Slack, Teams, chat bridges), so logs
and audit inputs name a URL only by its scheme and host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE

from suite.errors import SuiteError
from suite.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(3.0, connect=2.0)  # a release never waits long for a chat server
SCHEMA = "suite.release-notice/v1"


class Event(StrEnum):
    STARTED = "started"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    WAITING_APPROVAL = "waiting_approval"


@dataclass(frozen=True)
class Notice:
    event: Event
    service: str
    release: str
    outcome: str
    reason: str
    run_url: str
    time: str = ""

    def payload(self) -> dict[str, Any]:
        body = {"schema": SCHEMA, **asdict(self), "event": self.event.value}
        body["time"] = self.time or datetime.now(UTC).isoformat(timespec="seconds")
        body["text"] = (f"{self.service} release {self.release}: "
                        f"{self.event.value.replace('_', ' ')} — {self.reason}")  # chat bridges
        return body


@dataclass(frozen=True)
class Delivery:
    url: str  # redacted: scheme://host[:port]/…
    ok: bool
    detail: str


def redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def outcome_event(outcome: str) -> Event:
    return {"promoted": Event.PROMOTED, "rolled_back": Event.ROLLED_BACK}.get(outcome,
                                                                              Event.FAILED)


def run_url(settings: Settings) -> str:
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    return f"{settings.url('prefect')}/runs/flow-run/{run_id}" if run_id else ""


Post = Callable[[str, dict[str, Any]], int]


def _post(url: str, body: dict[str, Any]) -> int:
    return httpx.post(url, json=body, timeout=TIMEOUT, follow_redirects=False).status_code


def deliver(notice: Notice, urls: Sequence[str], post: Post = _post) -> list[Delivery]:
    """Post ``notice`` to each URL; every error becomes a failed :class:`Delivery`."""
    body = notice.payload()
    results = []
    for url in urls:
        try:
            status = post(url, body)
        except Exception as exc:  # a notification never fails a release
            results.append(Delivery(redact(url), False, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        results.append(Delivery(redact(url), 200 <= status < 300, f"HTTP {status}"))
    return results


Audit = Callable[[str, str, dict[str, Any], str], object]


def notify(settings: Settings, urls: Sequence[str], notice: Notice, post: Post = _post,
           audit: Audit | None = None) -> list[Delivery]:
    """Deliver, log each result, audit each failure; never raises."""
    if not urls:
        return []
    if audit is None:
        audit = _audit_fn(settings)
    results = deliver(notice, urls, post)
    for d in results:
        if d.ok:
            log.info("notified %s of %s %s: %s", d.url, notice.release, notice.event, d.detail)
            continue
        log.warning("notification %s of release %s to %s failed: %s (the release goes on)",
                    notice.event, notice.release, d.url, d.detail)
        try:
            audit("notify.failed", notice.release or "(none)",
                  {"service": notice.service, "event": notice.event.value, "url": d.url,
                   "error": d.detail}, "failed")
        except Exception as exc:  # nor does the audit of one
            log.warning("audit of the failed notification not recorded: %s", exc)
    return results


def _audit_fn(settings: Settings) -> Audit:
    from suite import audit as audit_mod

    def record(action: str, subject: str, inputs: dict[str, Any], outcome: str) -> object:
        try:
            return audit_mod.append(settings, action=action,
                                    subject=subject, inputs=inputs, outcome=outcome)
        except SuiteError as exc:
            log.warning("audit event %s not recorded: %s", action, exc)
            return None

    return record


@task(name="notify", cache_policy=NO_CACHE)
def notify_task(settings: Settings, urls: Sequence[str], event: Event, service: str,
                release: str, outcome: str, reason: str) -> int:
    """Thin wrapper: the run's own URL is added here; returns how many deliveries succeeded."""
    try:
        notice = Notice(event, service, release, outcome, reason[:500], run_url(settings))
        return sum(d.ok for d in notify(settings, urls, notice))
    except Exception as exc:  # whatever happens, the release goes on
        log.warning("notifications of %s not sent: %s", release, exc)
        return 0
