"""The template's `sequential:` section and analyze_step feeding the monitors at every interval
(scripted provider and clock: no server). A critical rejection ends the step FAIL at once."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest

from policies.canary import parse
from suite.errors import ConfigError
from tasks.analyze import analyze_step
from tasks.canary.scoring import Verdict
from tasks.metrics.base import Measurement, ProviderStatus, Samples, SeriesValues

RATE = {"name": "errors", "kind": "rate",
        "events_query": 'req_total{${selector},code=~"5.."}',
        "exposure_query": "req_total{${selector}}"}
HIST = {"name": "latency", "kind": "histogram", "buckets_query": "lat_bucket{${selector}}"}
TEMPLATE: dict[str, Any] = {
    "selectors": {"baseline": {"track": "stable"}, "canary": {"track": "canary"}},
    "metrics": [{"name": "lat", "group": "latency", "query": "lat{${selector}}"}],
    "sequential": {"alpha": 0.01, "metrics": [RATE, HIST]},
}
LE = ("0.001", "0.01", "0.1", "+Inf")


def template(**sequential: Any) -> dict[str, Any]:
    data = copy.deepcopy(TEMPLATE)
    data["sequential"].update(sequential)
    return data


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Platform:
    """Counters of a canary (4 req/s) and a baseline (16 req/s) as Prometheus would list them."""

    name = "scripted"

    def __init__(self, clock: Clock, canary_errors_every: float = 0, canary_bucket: int = 0,
                 reset_at: float | None = None, canary_le: tuple[str, ...] = LE) -> None:
        self.clock = clock
        self.every = canary_errors_every
        self.bucket = canary_bucket
        self.reset_at = reset_at
        self.canary_le = canary_le
        self.series_calls = 0

    def query(self, query: str, start: datetime, end: datetime, step_seconds: float) -> Samples:
        return Samples(query, tuple(float(i % 3) for i in range(20)), 1)

    def query_instant(self, query: str, at: datetime | None = None) -> Measurement:
        return Measurement(value=1.0, query=query)

    def check_online(self) -> ProviderStatus:
        return ProviderStatus(True, "scripted")

    def query_series(self, query: str, at: datetime | None = None) -> SeriesValues:
        self.series_calls += 1
        canary = 'track="canary"' in query
        t = self.clock.now + 10  # counters were already running before the step
        if canary and self.reset_at is not None and self.clock.now >= self.reset_at:
            t = self.clock.now - self.reset_at + 1  # the canary replica restarted
        requests = (4 if canary else 16) * t
        if query.startswith("lat_bucket"):
            bucket = self.bucket if canary else 0
            les = self.canary_le if canary else LE
            return SeriesValues(query, tuple(
                ((("le", le),), requests if i >= bucket else 0.0) for i, le in enumerate(les)))
        if "5.." in query:
            errors = int(t // self.every) if canary and self.every else 0
            listed = (((("code", "500"),), float(errors)),) if errors else ()
            return SeriesValues(query, listed)
        return SeriesValues(query, (((("code", "200"),), float(requests)),))


def run(platform: Platform, data: dict[str, Any] = TEMPLATE):
    return analyze_step(platform, parse(data), variables={}, duration_s=20, interval_s=1,
                        clock=platform.clock, sleep=platform.clock.sleep)


def test_template_sequential_section_is_parsed_with_defaults() -> None:
    rate, hist = parse(template(alpha=0.05, metrics=[RATE, {**HIST, "alpha": 0.001,
                                                            "critical": False}])).sequential
    assert (rate.kind, rate.direction, rate.critical) == ("rate", "increase", True)
    assert rate.alpha == 0.05
    assert rate.queries == {"events": RATE["events_query"], "exposure": RATE["exposure_query"]}
    assert (hist.queries, hist.critical, hist.alpha) == ({"buckets": HIST["buckets_query"]},
                                                         False, 0.001)
    assert parse({k: v for k, v in TEMPLATE.items() if k != "sequential"}).sequential == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [(template(metrics=[{**RATE, "exposure_query": None}]),
      "sequential.metrics[0].exposure_query is missing (kind 'rate' needs events_query and "
      "exposure_query, e.g. exposure_query: 'http_requests_total{${selector}}')"),
     (template(metrics=[{**HIST, "events_query": "x{${selector}}"}]),
      "sequential.metrics[0].events_query is set but kind is 'histogram'"),
     (template(metrics=[{**HIST, "buckets_query": "lat_bucket"}]),
      "sequential.metrics[0].buckets_query has no ${selector}"),
     (template(alpha=1.5), "sequential.alpha: Input should be less than 1 (got 1.5)"),
     (template(metrics=[{**RATE, "kind": "counter"}]),
      "sequential.metrics[0].kind: Input should be 'rate' or 'histogram' (got 'counter')"),
     (template(metrics=[{**RATE, "direction": "up"}]), "sequential.metrics[0].direction"),
     (template(metrics=[RATE, RATE]), "sequential.metrics[1].name 'errors' is used twice"),
     (template(metrics=[]), "sequential.metrics: List should have at least 1 item")],
)
def test_template_sequential_mistakes_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert message in str(caught.value)


def test_equal_versions_run_the_whole_step_and_pass() -> None:
    platform = Platform(Clock())
    step = run(platform)
    assert step.result.verdict == Verdict.PASS and not step.stopped_early
    errors, latency = step.sequential
    assert not errors.rejected and not latency.rejected and errors.crossed_at is None
    assert len(errors.history) == 20 and errors.history[0] == (0.0, 1.0)
    assert errors.result is not None and errors.result.counts["canary_exposure"] == 76


def test_canary_errors_end_the_step_fail_within_seconds() -> None:
    platform = Platform(Clock(), canary_errors_every=1)
    step = run(platform)
    errors = step.sequential[0]
    assert step.stopped_early and step.result.verdict == Verdict.FAIL
    assert errors.crossed_at is not None and errors.crossed_at <= 5 and step.seconds < 20
    assert step.result.reason.startswith(f"sequential errors at {errors.crossed_at:g} s: rate:")
    assert [p for _, p in errors.history] == sorted((p for _, p in errors.history), reverse=True)
    report = json.loads(json.dumps(step.to_dict()))
    assert report["sequential"][0]["rejected"] and report["verdict"] == "FAIL"


def test_slow_canary_histogram_ends_the_step_at_the_second_look() -> None:
    step = run(Platform(Clock(), canary_bucket=2))  # every canary request above 10 ms
    latency = step.sequential[1]
    assert step.result.verdict == Verdict.FAIL and latency.crossed_at == 1.0
    assert latency.result is not None and latency.result.counts["canary"] == [0, 0, 4, 0]


def test_non_critical_rejection_is_reported_but_does_not_stop_the_step() -> None:
    data = template(metrics=[{**HIST, "critical": False}])
    step = run(Platform(Clock(), canary_bucket=2), data)
    assert not step.stopped_early and step.result.verdict == Verdict.PASS
    assert step.sequential[0].rejected and step.sequential[0].crossed_at == 1.0


def test_counter_reset_is_counted_from_zero_and_reported() -> None:
    step = run(Platform(Clock(), reset_at=5.0))
    errors = step.sequential[0]
    assert errors.resets >= 1 and errors.error is None and not errors.rejected
    assert errors.result is not None
    assert errors.result.counts["canary_exposure"] == 4 * 4 + 4 * 15  # 4 s, then 15 s afresh


def test_mismatched_buckets_are_an_error_of_the_check_not_a_failure() -> None:
    step = run(Platform(Clock(), canary_le=("0.002", "0.01", "0.1", "+Inf")))
    latency = step.sequential[1]
    assert latency.error is not None and "differ from baseline" in latency.error
    assert step.result.verdict == Verdict.PASS and not step.stopped_early


def test_provider_without_series_reports_it() -> None:
    class Plain(Platform):
        query_series = None  # type: ignore[assignment]

    step = run(Plain(Clock()))
    assert step.sequential[0].error == "metric provider 'scripted' cannot list series"
    assert step.result.verdict == Verdict.PASS


# pauses: the same monitors fed at every poll of a pause step, no judge


def pause(platform: Platform, data: dict[str, Any] = TEMPLATE, polls: int = 10):
    from tasks.analyze import PauseWatch

    watch = PauseWatch(platform, {"t": parse(data)}, variables={}, step=2, weight=20,
                       clock=platform.clock)
    for _ in range(polls):
        failed = watch.look()
        if failed is not None:
            return watch, failed
        platform.clock.sleep(1)
    return watch, None


def test_a_pause_of_equal_versions_is_recorded_pass_with_its_p_values() -> None:
    watch, failed = pause(Platform(Clock()))
    assert failed is None and watch.fed
    record = json.loads(json.dumps(watch.record().to_dict()))
    assert (record["kind"], record["verdict"], record["metrics"]) == ("pause", "PASS", [])
    assert [len(c["history"]) for c in record["sequential"]] == [10, 10]


def test_canary_errors_during_a_pause_end_it_fail_at_once() -> None:
    _, failed = pause(Platform(Clock(), canary_errors_every=1))
    assert failed is not None and failed.stopped_early and failed.kind == "pause"
    assert failed.result.verdict == Verdict.FAIL and failed.result.score == 0.0
    assert failed.result.reason.startswith("sequential errors at ")
    assert failed.sequential[0].crossed_at is not None and failed.sequential[0].crossed_at <= 5


@pytest.mark.parametrize(
    ("steps", "number", "expected"),
    [(["w", "p", "a1", "w", "a2"], 2, ("a1",)),   # the next analysis
     (["w", "a1", "w", "p"], 4, ("a1",)),         # none follows: the last one before
     (["w", "p", "w"], 2, ())],                   # no analysis at all: nothing to watch
)
def test_pause_watches_the_templates_of_the_analysis_around_it(
        steps: list[str], number: int, expected: tuple[str, ...]) -> None:
    from suite.services.spec import AnalysisRef, Step
    from tasks.analyze import pause_templates

    made = [Step("setWeight", weight=20) if s == "w" else Step("pause", weight=20, pause_s=5)
            if s == "p" else Step("analysis", weight=20, analysis=AnalysisRef((s,), 20, 2))
            for s in steps]
    assert pause_templates(made, number) == expected


def test_no_watch_without_canary_traffic_or_without_a_sequential_section(
        tmp_path: Any) -> None:
    import yaml

    from suite.settings import Settings
    from tasks.analyze import pause_watch

    with_seq, without = tmp_path / "a.yaml", tmp_path / "b.yaml"
    with_seq.write_text(yaml.safe_dump(TEMPLATE))
    without.write_text(yaml.safe_dump({k: v for k, v in TEMPLATE.items() if k != "sequential"}))
    settings = Settings(home=tmp_path, ports={})
    assert pause_watch({"a": str(with_seq)}, settings, "web", 2, 0) is None
    assert pause_watch({"b": str(without)}, settings, "web", 2, 20) is None
    watch = pause_watch({"a": str(with_seq), "b": str(without)}, settings, "web", 2, 20)
    assert watch is not None and watch.names == ("a",)


def test_a_pause_warmup_keeps_a_fresh_replicas_first_seconds_out() -> None:
    platform = Platform(Clock(), canary_errors_every=1)
    _, failed = pause(platform, template(pause_warmup_seconds=4))
    assert failed is not None
    errors = failed.sequential[0]
    assert errors.history[0][0] == 4.0  # the first look is 4 s into the pause
    assert errors.crossed_at is not None and errors.crossed_at > 4
    assert errors.result is not None and errors.result.counts["canary_exposure"] == \
        4 * (errors.crossed_at - 4)  # counted from the first look on
