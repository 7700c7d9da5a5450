"""The canary's warm-up: requests straight to each new replica before it takes traffic.

The rule of when a replica is warm is pure (``tasks/canary/warmup.py``); this module sends the
requests (to the replica's own address, never through the router: no user sees them) and then
waits until the metric backend has scraped what they left behind, so that the sequential tests,
which count from the canary's first look, see none of them. Warm-up never fails a release: a
replica that answers errors or never settles is reported, and the analysis judges it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE

from policies.canary import CanaryTemplate
from policies.canary import load as load_template
from suite.settings import Settings
from tasks.canary.warmup import Settle, WarmupConfig, round_median, settle
from tasks.metrics.base import SeriesProvider, render_query

#: how long to wait for the metric backend to have scraped the warm-up (several scrapes)
CATCH_UP_SECONDS = 15.0


@dataclass(frozen=True)
class ReplicaWarmup:
    """One replica's warm-up: how it went, with the round medians that decided it."""

    url: str
    outcome: Settle
    sent: int
    failed: int
    seconds: float
    medians_ms: tuple[float, ...]
    first_error: str = ""

    def summary(self) -> str:
        first, last = (f"{self.medians_ms[0]:.2f}", f"{self.medians_ms[-1]:.2f}") \
            if self.medians_ms else ("-", "-")
        text = (f"{self.url}: {self.outcome} after {self.sent} requests in {self.seconds:.1f} s "
                f"(round median {first} -> {last} ms)")
        if self.failed:
            text += f", {self.failed} failed (first: {self.first_error})"
        return text


Send = Callable[[], str | None]  # one request; None when it answered 2xx, else what went wrong


def http_sender(client: httpx.Client, url: str, config: WarmupConfig) -> Send:
    def send() -> str | None:
        try:
            resp = client.request(config.method, url + config.path, headers=dict(config.headers),
                                  json=config.body if config.body is not None else None)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return None if 200 <= resp.status_code < 300 else \
            f"{resp.status_code} {resp.text[:120]}"
    return send


def warm_replica(url: str, send: Send, config: WarmupConfig,
                 clock: Callable[[], float] = time.perf_counter) -> ReplicaWarmup:
    """Rounds of requests one after the other until :func:`settle` says warm (or gives up)."""
    began = clock()
    medians: list[float] = []
    sent = failed = 0
    first_error = ""
    outcome = Settle.WARMING
    while outcome == Settle.WARMING:
        answered = []
        for _ in range(config.round_requests):
            start = clock()
            error = send()
            sent += 1
            if error is None:
                answered.append(clock() - start)
            else:
                failed += 1
                first_error = first_error or error
        if answered:
            medians.append(round_median(answered))
        outcome = settle(medians, sent, clock() - began, config)
    return ReplicaWarmup(url, outcome, sent, failed, clock() - began,
                         tuple(m * 1000 for m in medians), first_error)


def _canary_totals(provider: SeriesProvider, template: CanaryTemplate,
                   variables: Mapping[str, str]) -> tuple[float, ...] | None:
    values = {**template.variables, **variables}
    totals = []
    for metric in template.sequential:
        for query in metric.queries.values():
            answer = provider.query_series(render_query(query, template.labels("canary"),
                                                        values))
            if answer.error is not None:
                return None
            totals.append(sum(v for _, v in answer.series))
    return tuple(totals)


def caught_up(provider: SeriesProvider, template: CanaryTemplate, variables: Mapping[str, str],
              *, timeout_s: float = CATCH_UP_SECONDS, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait until the canary's counters of the template's sequential tests stop moving (two
    reads a scrape apart agree, and they are not empty): the backend has then scraped the whole
    warm-up, and a look after this one counts only the canary's own traffic. False when it did
    not happen within ``timeout_s`` (the monitors then see the warm-up's last scrape)."""
    deadline = clock() + timeout_s
    last = None
    while clock() < deadline:
        now = _canary_totals(provider, template, variables)
        if now is not None and now == last and any(now):
            return True
        last = now
        sleep(template.step_seconds)
    return False


def warm_up(urls: list[str], templates: Mapping[str, CanaryTemplate], provider_for:
            Callable[[CanaryTemplate], object], variables: Mapping[str, str]) -> str:
    """Warm every replica with each template's ``warmup:`` section; what happened, in words."""
    lines = []
    for name, template in templates.items():
        config = template.warmup
        if config is None:
            continue
        with httpx.Client(timeout=config.timeout_seconds) as client:
            for url in urls:
                lines.append(f"{name}: " + warm_replica(
                    url, http_sender(client, url, config), config).summary())
        provider = provider_for(template)
        if template.sequential and isinstance(provider, SeriesProvider):
            done = caught_up(provider, template, variables)
            lines.append(f"{name}: metrics {'scraped' if done else 'NOT all scraped'} "
                         f"before the canary's first request")
    return "; ".join(lines)


@task(name="canary-warmup", cache_policy=NO_CACHE)
def warmup_task(template_paths: Mapping[str, str], urls: list[str], settings: Settings,
                service: str) -> str:
    from tasks.analyze import provider_for

    templates = {name: load_template(path) for name, path in template_paths.items()}
    return warm_up(urls, templates, lambda t: provider_for(t, settings), {"service": service})
