"""The canary's warm-up: when a replica is warm (pure rule), its template section, the
requests sent straight to a replica, and the wait for the metric backend to catch up."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from policies.canary import load, parse
from suite.errors import ConfigError
from tasks.canary.warmup import Settle, WarmupConfig, round_median, settle
from tasks.metrics.base import SeriesValues
from tasks.warmup import caught_up, http_sender, warm_replica

from .test_template import MINIMAL

CONFIG = WarmupConfig(round_requests=10, min_requests=30, max_requests=200, settled_rounds=2,
                      tolerance=0.25, max_seconds=30.0)


@pytest.mark.parametrize(("medians", "sent", "elapsed", "expected"), [
    ([6.0, 3.0, 1.0], 30, 1.0, Settle.WARMING),             # still falling fast
    ([6.0, 3.0, 1.0, 1.1], 40, 1.0, Settle.WARMING),        # one flat round only
    ([6.0, 3.0, 1.0, 1.1, 0.95], 50, 1.0, Settle.SETTLED),  # two rounds on the plateau
    ([1.0, 1.0, 1.0], 30, 1.0, Settle.SETTLED),             # warm from the start
    ([1.0, 1.0, 1.0], 20, 1.0, Settle.WARMING),             # below min_requests
    ([1.0, 2.0, 2.1], 30, 1.0, Settle.WARMING),             # got slower: not settled
    ([6.0, 3.0, 1.0], 200, 1.0, Settle.GAVE_UP),            # max_requests
    ([6.0, 3.0, 1.0], 30, 30.0, Settle.GAVE_UP),            # max_seconds
])
def test_settle_rule(medians: list[float], sent: int, elapsed: float, expected: Settle) -> None:
    assert settle(medians, sent, elapsed, CONFIG) == expected


def test_round_median_ignores_one_slow_request() -> None:
    assert round_median([0.001, 0.001, 0.5]) == 0.001
    with pytest.raises(ConfigError, match="no answered request"):
        round_median([])


@pytest.mark.parametrize(("changes", "message"), [
    ({"path": "predict"}, "warmup.path is 'predict'"),
    ({"method": "DELETE"}, "warmup.method is 'DELETE'"),
    ({"round_requests": 0}, "warmup.round_requests is 0"),
    ({"min_requests": 50, "max_requests": 10}, "max_requests 10 is below min_requests 50"),
    ({"tolerance": -1.0}, "warmup.tolerance is -1.0"),
])
def test_bad_warmup_config_names_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WarmupConfig(**changes)


def test_template_warmup_section_parses_and_checks() -> None:
    data = copy.deepcopy(MINIMAL)
    data["warmup"] = {"path": "/predict", "method": "POST", "body": {"inputs": [[1, 2]]}}
    template = parse(data)
    assert template.warmup is not None and template.warmup.body == {"inputs": [[1, 2]]}
    assert parse(copy.deepcopy(MINIMAL)).warmup is None  # off unless the template has it
    data["warmup"] = {"path": "/predict", "requests": 5}
    with pytest.raises(ConfigError, match=r"warmup\.requests"):
        parse(data)
    data["warmup"] = {"path": "x"}
    with pytest.raises(ConfigError, match=r"warmup\.path is 'x'"):
        parse(data)


def test_model_server_template_warms_and_watches_from_the_first_second() -> None:
    template = load("policies/analysis/model-server.yaml")
    assert template.warmup is not None and template.warmup.path == "/predict"
    assert len(template.warmup.body["inputs"][0]) == 64  # one digits row
    assert template.sequential_pause_warmup_s == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warm_replica_sends_rounds_until_the_latency_settles() -> None:
    clock = Clock()
    latencies = iter([0.006] * 10 + [0.003] * 10 + [0.001] * 1000)

    def send() -> str | None:
        clock.now += next(latencies)
        return None

    got = warm_replica("http://replica", send, CONFIG, clock=clock)
    assert got.outcome == Settle.SETTLED and got.failed == 0
    assert got.sent == 50 and got.medians_ms == pytest.approx((6.0, 3.0, 1.0, 1.0, 1.0))
    assert "settled after 50 requests" in got.summary()


def test_warm_replica_reports_failures_and_gives_up() -> None:
    clock = Clock()

    def send() -> str | None:
        clock.now += 0.01
        return "500 boom"

    got = warm_replica("http://replica", send, CONFIG, clock=clock)
    assert got.outcome == Settle.GAVE_UP and got.sent == 200 and got.failed == 200
    assert "200 failed (first: 500 boom)" in got.summary()


def test_http_sender_posts_the_body_straight_to_the_replica() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200 if len(seen) == 1 else 422, text="bad input")

    config = WarmupConfig(path="/predict", method="POST", body={"inputs": [[0.0]]})
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        send = http_sender(client, "http://127.0.0.1:9", config)
        assert send() is None
        assert send() == "422 bad input"
    assert str(seen[0].url) == "http://127.0.0.1:9/predict" and seen[0].method == "POST"
    assert seen[0].content == b'{"inputs":[[0.0]]}'


class Provider:
    """Answers the canary's counter totals from a script (one answer per query per read)."""

    name = "fake"

    def __init__(self, totals: list[float]) -> None:
        self.totals = totals
        self.reads = 0

    def query_series(self, query: str, at: Any = None) -> SeriesValues:
        value = self.totals[min(self.reads // 3, len(self.totals) - 1)]  # 3 queries per read
        self.reads += 1
        return SeriesValues(query, ((((("code", "200"),), value),)))


def test_caught_up_waits_until_the_canary_counters_stop_moving() -> None:
    template = load("policies/analysis/model-server.yaml")  # 3 sequential queries
    clock = Clock()
    provider = Provider([0.0, 0.0, 80.0, 140.0, 140.0])

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert caught_up(provider, template, {"service": "model-server"}, clock=clock, sleep=sleep)
    assert provider.reads == 5 * 3  # stopped at the first two equal, non-empty reads


def test_caught_up_gives_up_after_its_timeout() -> None:
    template = load("policies/analysis/model-server.yaml")
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    assert not caught_up(Provider([0.0]), template, {"service": "model-server"}, timeout_s=5,
                         clock=clock, sleep=sleep)
