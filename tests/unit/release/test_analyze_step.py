"""analyze_step's control flow (early stop, dead replicas) with a scripted in-memory provider;
the judge itself is tested in tests/unit/canary, the real Prometheus path in tests/e2e."""

from __future__ import annotations

from datetime import datetime

from policies.canary import parse
from tasks.analyze import analyze_step
from tasks.canary.scoring import Verdict
from tasks.metrics.base import Measurement, ProviderStatus, Samples

TEMPLATE = {
    "selectors": {"baseline": {"track": "stable"}, "canary": {"track": "canary"}},
    "metrics": [{"name": "lat", "group": "latency", "query": "lat{${selector}}"}],
    "thresholds": [{"name": "ok-rate", "query": "rate{${selector}}",
                    "success_condition": "result >= 0.99", "failure_limit": 1}],
}


class Scripted:
    name = "scripted"

    def __init__(self, instant: list[float]) -> None:
        self.instant = list(instant)
        self.calls = 0

    def query(self, query: str, start: datetime, end: datetime, step_seconds: float) -> Samples:
        return Samples(query, tuple(float(i % 3) for i in range(20)), 1)

    def query_instant(self, query: str, at: datetime | None = None) -> Measurement:
        self.calls += 1
        value = self.instant.pop(0) if self.instant else 1.0
        return Measurement(value=value, query=query)

    def check_online(self) -> ProviderStatus:
        return ProviderStatus(True, "scripted")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(provider: Scripted, **kwargs):
    clock = Clock()
    return analyze_step(provider, parse(TEMPLATE), variables={}, duration_s=20, interval_s=2,
                        clock=clock, sleep=clock.sleep, **kwargs)


def test_full_step_passes_when_everything_is_equal():
    provider = Scripted([1.0] * 20)
    result = run(provider)
    assert result.result.verdict == Verdict.PASS
    assert provider.calls == 10 and not result.stopped_early
    assert result.points == {"lat": (20, 20)}


def test_failed_threshold_stops_within_failure_limit_measurements():
    provider = Scripted([1.0, 0.5, 0.5, 1.0, 1.0])
    result = run(provider)
    assert result.stopped_early
    assert provider.calls == 3  # one good, then failure_limit (1) + 1 failures
    assert result.result.verdict == Verdict.FAIL
    assert "failed (2) > failure_limit (1)" in result.result.reason


def test_dead_replica_ends_the_step_with_error():
    provider = Scripted([1.0] * 20)
    result = run(provider, health=lambda: ["canary replica c-1 is not running"])
    assert result.stopped_early and provider.calls == 0
    assert result.result.verdict == Verdict.ERROR
    assert result.result.reason.startswith("canary replica c-1 is not running")


class Healer:
    """Replaces a dead stable replica on its ``at``-th call; raises the scripted errors first."""

    def __init__(self, at: int = 0, errors: int = 0) -> None:
        self.at, self.errors, self.calls = at, errors, 0

    def __call__(self) -> list[str]:
        self.calls += 1
        if self.errors:
            self.errors -= 1
            raise RuntimeError("engine answered 500")
        return ["stable replica s-2 replaced by s-2"] if self.calls == self.at else []


def test_a_healed_stable_restarts_the_window_and_what_came_before_does_not_count():
    # one failed measurement before the heal and one after: failure_limit 1 is not exceeded,
    # as the step's evidence starts again once stable is whole
    provider = Scripted([0.5, 0.5] + [1.0] * 20)
    result = run(provider, heal=Healer(at=2))
    assert result.result.verdict == Verdict.PASS, result.result.reason
    assert result.healed == ("stable replica s-2 replaced by s-2",)
    assert provider.calls == 1 + 10  # the full step after the heal
    assert result.result.reason.startswith("stable healed (stable replica s-2")
    assert result.to_dict()["healed"] == ["stable replica s-2 replaced by s-2"]


def test_without_the_heal_the_same_measurements_fail():
    assert run(Scripted([0.5, 0.5] + [1.0] * 20)).result.verdict == Verdict.FAIL


def test_a_failed_heal_is_retried_without_measuring():
    provider = Scripted([1.0] * 20)
    healer = Healer(errors=2)
    result = run(provider, heal=healer)
    assert result.result.verdict == Verdict.PASS and provider.calls == 10
    assert healer.calls == 2 + 10


def test_a_stable_that_cannot_be_healed_ends_the_step_error():
    provider = Scripted([1.0] * 20)
    result = run(provider, heal=Healer(errors=5))
    assert result.result.verdict == Verdict.ERROR and provider.calls == 0
    assert "stable could not be kept healthy" in result.result.reason
    assert "engine answered 500" in result.result.reason
