"""One canary analysis step: threshold checks measured every ``interval`` while traffic flows,
then the judge over the whole step window. A FAILED threshold ends the step at once, so a bad
canary is rolled back within ``failure_limit x interval`` instead of at the end of the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from policies.canary import CanaryTemplate
from policies.canary import load as load_template
from suite.settings import Settings
from tasks.canary.analysis import AnalysisResult, collect, judge, measure
from tasks.canary.scoring import Verdict
from tasks.canary.thresholds import Phase, assess
from tasks.metrics import get_provider
from tasks.metrics.base import Measurement, MetricProvider, Samples


@dataclass(frozen=True)
class StepAnalysis:
    """An analysis result with what the report needs: when, how long, how many points."""

    step: int
    weight: int
    started: str
    seconds: float
    stopped_early: bool
    points: dict[str, tuple[int, int]]  # metric -> (baseline points, canary points)
    result: AnalysisResult

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "weight": self.weight, "started": self.started,
                "seconds": round(self.seconds, 1), "stopped_early": self.stopped_early,
                "points": {k: list(v) for k, v in self.points.items()},
                **self.result.to_dict()}


def provider_for(template: CanaryTemplate, settings: Settings) -> MetricProvider:
    """The template's provider; the local platform's Prometheus unless the template says else."""
    options = dict(template.provider_options)
    if template.provider == "prometheus" and options.get("address") in (None, "local"):
        options["address"] = settings.url("prometheus")
    return get_provider(template.provider, **options)


def _points(samples: Samples | None) -> int:
    return len(samples.values) if samples is not None else 0


def analyze_step(
    provider: MetricProvider,
    template: CanaryTemplate,
    *,
    variables: Mapping[str, str],
    duration_s: float,
    interval_s: float,
    step: int = 0,
    weight: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    health: Callable[[], list[str]] = list,
) -> StepAnalysis:
    """Measure thresholds every ``interval_s`` for ``duration_s``, then judge the window.

    ``health`` names replicas that died: the step then ends at once with an ERROR verdict, as
    a canary that crashed must not wait for its metrics to go stale."""
    began_wall = datetime.now(UTC)
    began = clock()
    measurements: dict[str, list[Measurement]] = {t.name: [] for t in template.thresholds}
    stopped_early = False
    dead: list[str] = []
    while True:
        dead = health()
        if dead:
            stopped_early = True
            break
        for name, m in measure(provider, template, variables=variables).items():
            measurements[name].append(m)
        if any(assess(t.check, measurements[t.name]).phase in (Phase.FAILED, Phase.ERROR)
               for t in template.thresholds):
            stopped_early = True
            break
        if clock() - began + interval_s >= duration_s:
            break
        sleep(interval_s)
    elapsed = max(clock() - began, template.step_seconds)
    window = replace(template, window_seconds=max(elapsed, 2 * template.step_seconds))
    series = collect(provider, window, end=datetime.now(UTC), variables=variables)
    result = judge(template, series, measurements, terminating=True)
    if dead:
        result = replace(result, verdict=Verdict.ERROR,
                         reason="; ".join(dead) + "; " + result.reason)
    points = {name: (_points(pair.baseline), _points(pair.canary)) for name, pair in series.items()}
    return StepAnalysis(step, weight, began_wall.isoformat(timespec="seconds"), elapsed,
                        stopped_early, points, result)


@task(name="canary-analysis", cache_policy=NO_CACHE)
def analysis_task(
    template_path: str, target: str, service: str, step: int, weight: int, duration_s: float,
    interval_s: float, settings: Settings,
) -> StepAnalysis:
    from tasks.targets import get_target

    template = load_template(template_path)
    provider = provider_for(template, settings)
    deployed = get_target(target, settings)
    return analyze_step(provider, template, variables={"service": service},
                        duration_s=duration_s, interval_s=interval_s, step=step, weight=weight,
                        health=lambda: deployed.problems(service))
