"""One analysis step end to end, with a fake provider: collect, judge, score, check, verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from policies.canary import CanaryTemplate, parse
from tasks.canary.analysis import SeriesPair, collect, judge, measure
from tasks.canary.judge import Classification, Verdict
from tasks.metrics.base import Measurement, ProviderStatus, Samples

TEMPLATE: CanaryTemplate = parse(
    {
        "selectors": {"baseline": {"track": "stable"}, "canary": {"track": "canary"}},
        "variables": {"service": "web"},
        "window_seconds": 30,
        "step_seconds": 2,
        "groups": {"latency": 50, "errors": 50},
        "metrics": [
            {"name": "latency", "group": "latency", "query": "lat{${selector}}"},
            {
                "name": "errors",
                "group": "errors",
                "query": 'err{${selector},service="${service}"}',
                "exposure_query": "req{${selector}}",
                "critical": True,
                "direction": "increase",
            },
        ],
        "thresholds": [
            {"name": "success", "query": "ok{${selector}}", "success_condition": ">= 0.99"}
        ],
    }
)
RNG = np.random.default_rng(5)
LAT_BASE = tuple(RNG.lognormal(np.log(0.1), 0.3, 60))
LAT_SAME = tuple(RNG.lognormal(np.log(0.1), 0.3, 60))
LAT_UP = tuple(v * 1.5 for v in LAT_SAME)


def samples(values: tuple[float, ...] | list[float]) -> Samples:
    return Samples(query="q", values=tuple(values), series=1)


def series(latency: tuple[float, ...] = LAT_SAME, canary_errors: int = 1) -> dict[str, SeriesPair]:
    return {
        "latency": SeriesPair(samples(LAT_BASE), samples(latency)),
        # the canary takes 10 % of the traffic: 100 requests per step against 900
        "errors": SeriesPair(
            samples([1.0] * 9 + [0.0] * 51),
            samples([float(canary_errors)] + [0.0] * 59),
            baseline_exposure=samples([900.0] * 60),
            canary_exposure=samples([100.0] * 60),
        ),
    }


def good() -> dict[str, list[Measurement]]:
    return {"success": [Measurement(value=0.999)]}


def test_all_good_passes() -> None:
    result = judge(TEMPLATE, series(), good())
    assert result.verdict == Verdict.PASS and result.score == 100.0
    labels = {r.name: r.classification for _, r in result.metrics}
    assert labels == {"latency": Classification.PASS, "errors": Classification.PASS}
    json.dumps(result.to_dict())  # the report is plain JSON


def test_latency_shift_fails_its_group() -> None:
    result = judge(TEMPLATE, series(latency=LAT_UP), good())
    assert result.score == 50.0 and result.verdict == Verdict.FAIL
    assert "latency 0/1" in result.reason


def test_error_rate_per_request_is_critical() -> None:
    """9 errors in 54000 requests against 12 in 6000: same-looking counts, 12x the rate."""
    result = judge(TEMPLATE, series(canary_errors=12), good())
    errors = dict((r.name, r) for _, r in result.metrics)["errors"]
    assert errors.test == "rate" and errors.classification == Classification.HIGH
    assert errors.critical and result.score == 0.0 and result.verdict == Verdict.FAIL
    assert "critical metric errors failed" in result.reason


def test_a_failed_query_is_an_error_metric_not_an_exception() -> None:
    broken = series()
    broken["latency"] = SeriesPair(Samples("q", error="prometheus down"), samples(LAT_SAME))
    result = judge(TEMPLATE, broken, good())
    latency = dict((r.name, r) for _, r in result.metrics)["latency"]
    assert latency.classification == Classification.ERROR
    assert latency.reason == "baseline query failed: prometheus down"
    assert result.verdict == Verdict.PASS  # errors are not counted; the other group passed


def test_nothing_judged_is_an_error_verdict() -> None:
    result = judge(TEMPLATE, {}, good())
    assert result.verdict == Verdict.ERROR
    assert result.reason.startswith("no metric could be judged: no samples were collected")


def test_missing_exposure_is_an_error_metric() -> None:
    broken = series()
    pair = broken["errors"]
    broken["errors"] = SeriesPair(pair.baseline, pair.canary, pair.baseline_exposure, None)
    errors = dict((r.name, r) for _, r in judge(TEMPLATE, broken, good()).metrics)["errors"]
    assert errors.classification == Classification.ERROR
    assert "canary exposure query failed: not collected" in errors.reason


def test_thresholds_can_override_a_good_score() -> None:
    failing = {"success": [Measurement(value=0.9)]}
    result = judge(TEMPLATE, series(), failing)
    assert result.verdict == Verdict.FAIL and result.score == 100.0
    assert "threshold success: failed (1) > failure_limit (0)" in result.reason
    inconclusive = judge(TEMPLATE, series(), {"success": [Measurement(value=float("nan"))]})
    assert inconclusive.verdict == Verdict.MARGINAL
    down = [Measurement(error="prometheus down")] * 5
    assert judge(TEMPLATE, series(), {"success": down}).verdict == Verdict.ERROR


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        self.range_calls: list[tuple[str, datetime, datetime, float]] = []
        self.instant_calls: list[str] = []

    def query(self, query: str, start: datetime, end: datetime, step_seconds: float) -> Samples:
        self.range_calls.append((query, start, end, step_seconds))
        return samples([1.0, 2.0])

    def query_instant(self, query: str, at: datetime | None = None) -> Measurement:
        self.instant_calls.append(query)
        return Measurement(value=1.0, query=query)

    def check_online(self) -> ProviderStatus:
        return ProviderStatus(True, "fake")


def test_collect_renders_both_selectors_over_the_window() -> None:
    fake = FakeProvider()
    end = datetime(2026, 1, 1, tzinfo=UTC)
    pairs = collect(fake, TEMPLATE, end, variables={"service": "api"})
    assert set(pairs) == {"latency", "errors"}
    queries = [call[0] for call in fake.range_calls]
    assert queries == [
        'lat{track="stable"}',
        'lat{track="canary"}',
        'err{track="stable",service="api"}',
        'err{track="canary",service="api"}',
        'req{track="stable"}',
        'req{track="canary"}',
    ]
    assert {(c[1], c[2], c[3]) for c in fake.range_calls} == {(end - timedelta(seconds=30), end, 2)}
    assert pairs["errors"].canary_exposure is not None


def test_measure_queries_the_canary_now() -> None:
    fake = FakeProvider()
    assert measure(fake, TEMPLATE) == {
        "success": Measurement(value=1.0, query='ok{track="canary"}')
    }
