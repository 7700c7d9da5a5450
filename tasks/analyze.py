"""One canary analysis step: threshold checks measured every ``interval`` while traffic flows,
then the judge over the whole step window. A FAILED threshold ends the step at once, so a bad
canary is rolled back within ``failure_limit x interval`` instead of at the end of the step.

With a ``sequential:`` section in the template, anytime-valid monitors (tasks/canary/sequential.py)
are fed the raw counters at every interval too; a critical one that rejects ends the step FAIL at
once. Counter resets are handled here, per series, as Prometheus's ``increase()`` does: a series
whose value went down restarted from zero, so its new value is all new counts (and the reset is
reported on the check). A series first seen after the step's first look started during the step
(e.g. the first 5xx creates its ``code`` series), so all of its value counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from policies.canary import CanaryTemplate, SequentialMetric
from policies.canary import load as load_template
from suite.errors import ConfigError
from suite.platform import credentials
from suite.services.spec import Step
from suite.settings import Settings
from tasks.canary.analysis import AnalysisResult, collect, judge, measure
from tasks.canary.scoring import Verdict, worst
from tasks.canary.sequential import HistogramMonitor, RateMonitor, SequentialResult
from tasks.canary.thresholds import Phase, assess
from tasks.metrics import get_provider
from tasks.metrics.base import (
    Measurement,
    MetricProvider,
    Samples,
    SeriesProvider,
    SeriesValues,
    render_query,
)


@dataclass(frozen=True)
class SequentialCheck:
    """One sequential monitor over a step: its last result, when it crossed, p over time."""

    name: str
    kind: str
    critical: bool
    result: SequentialResult | None
    crossed_at: float | None  # seconds into the step of the first rejection
    history: tuple[tuple[float, float], ...]  # (seconds into the step, p-value) per look
    error: str | None = None
    resets: int = 0

    @property
    def rejected(self) -> bool:
        return self.result is not None and self.result.reject

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "critical": self.critical,
                "rejected": self.rejected, "crossed_at": self.crossed_at,
                "history": [[round(t, 1), p] for t, p in self.history], "error": self.error,
                "resets": self.resets,
                "result": self.result.to_dict() if self.result is not None else None}


_Key = tuple[tuple[str, str], ...]


class _Counters:
    """Raw counter series -> counts since the step's first look, resets handled per series."""

    def __init__(self) -> None:
        self.first: dict[_Key, float] | None = None
        self.last: dict[_Key, float] = {}
        self.carried: dict[_Key, float] = {}  # counts before each series' resets
        self.resets = 0

    def add(self, values: SeriesValues) -> dict[_Key, float]:
        seen = dict(values.series)
        if self.first is None:
            self.first = dict(seen)
        for key, value in seen.items():
            if value < self.last.get(key, 0.0):
                self.carried[key] = self.carried.get(key, 0.0) + self.last[key]
                self.resets += 1
            self.last[key] = value
        return {key: self.carried.get(key, 0.0) + value - self.first.get(key, 0.0)
                for key, value in self.last.items()}


def _bound(key: _Key) -> float:
    le = dict(key).get("le")
    try:
        return float(le) if le is not None else float("nan")
    except ValueError:
        return float("nan")


class _Watch:
    """Feeds one template metric's monitor from the provider at every look."""

    def __init__(self, metric: SequentialMetric, template: CanaryTemplate,
                 values: Mapping[str, str]) -> None:
        self.metric = metric
        self.queries = {
            (part, side): render_query(query, template.labels(side), values)
            for part, query in metric.queries.items() for side in ("canary", "baseline")
        }
        self.counters = {key: _Counters() for key in self.queries}
        self.monitor: RateMonitor | HistogramMonitor | None = None
        self.result: SequentialResult | None = None
        self.history: list[tuple[float, float]] = []
        self.crossed_at: float | None = None
        self.error: str | None = None
        self.failed = False  # invalid counts: the monitor stops (its evidence is unusable)

    def look(self, provider: SeriesProvider, seconds: float) -> None:
        if self.failed:
            return
        counts = {}
        for key, query in self.queries.items():
            answer = provider.query_series(query)
            if answer.error is not None:
                self.error = f"{key[1]} {key[0]} query failed: {answer.error}"
                return  # a missed look loses nothing: the next one has the cumulative counts
            counts[key] = self.counters[key].add(answer)
        try:
            result = self._update(counts)
        except ConfigError as exc:
            self.error, self.failed = str(exc), True
            return
        self.error = None
        if result is None:
            return
        self.result = result
        self.history.append((seconds, self.result.p_value))
        if self.result.reject and self.crossed_at is None:
            self.crossed_at = seconds

    def _update(
        self, counts: Mapping[tuple[str, str], dict[_Key, float]]
    ) -> SequentialResult | None:
        m = self.metric
        if m.kind == "rate":
            if not isinstance(self.monitor, RateMonitor):
                self.monitor = RateMonitor(alpha=m.alpha, direction=m.direction)
            total = {key: sum(series.values()) for key, series in counts.items()}
            return self.monitor.update(
                total["events", "canary"], total["exposure", "canary"],
                total["events", "baseline"], total["exposure", "baseline"])
        sides = {}
        for side in ("canary", "baseline"):
            by_le: dict[float, float] = {}
            for key, value in counts["buckets", side].items():
                by_le[_bound(key)] = by_le.get(_bound(key), 0.0) + value
            sides[side] = by_le
        canary, baseline = sides["canary"], sides["baseline"]
        if not canary or not baseline:  # no series yet on one side: nothing to compare
            return self.monitor.result() if self.monitor else None
        if set(canary) != set(baseline):
            raise ConfigError(
                f"canary buckets le={sorted(canary)} differ from baseline le={sorted(baseline)} "
                "(expected the same histogram on both sides)")
        bounds = sorted(canary)
        if not isinstance(self.monitor, HistogramMonitor):
            self.monitor = HistogramMonitor(bounds, alpha=m.alpha, direction=m.direction)
        elif list(self.monitor.bounds) != bounds:
            raise ConfigError(f"buckets changed during the step: le={bounds} "
                              f"(expected le={list(self.monitor.bounds)})")
        return self.monitor.update([canary[b] for b in bounds], [baseline[b] for b in bounds])

    def check(self) -> SequentialCheck:
        resets = sum(c.resets for c in self.counters.values())
        return SequentialCheck(self.metric.name, self.metric.kind, self.metric.critical,
                               self.result, self.crossed_at, tuple(self.history), self.error,
                               resets)


def _watches(provider: MetricProvider, template: CanaryTemplate,
             variables: Mapping[str, str]) -> list[_Watch]:
    values = {**template.variables, **variables}
    return [_Watch(m, template, values) for m in template.sequential]


def _sequential_verdict(result: AnalysisResult, checks: list[SequentialCheck]) -> AnalysisResult:
    rejected = [c for c in checks if c.critical and c.rejected and c.result is not None]
    if not rejected:
        return result
    reasons = [f"sequential {c.name} at {c.crossed_at:g} s: {c.result.reason}"
               for c in rejected if c.result is not None and c.crossed_at is not None]
    return replace(result, verdict=worst([result.verdict, Verdict.FAIL]),
                   reason="; ".join([*reasons, result.reason]))


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
    sequential: tuple[SequentialCheck, ...] = ()
    #: metric -> the judged samples of each side, for the report's chart and Prometheus links
    series: dict[str, dict[str, Any]] = field(default_factory=dict)
    kind: str = "analysis"  # or "pause": a pause watched by its sequential tests only
    #: stable replicas replaced during the step (each restarted the step's window)
    healed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "weight": self.weight,
                "started": self.started,
                "seconds": round(self.seconds, 1), "stopped_early": self.stopped_early,
                "points": {k: list(v) for k, v in self.points.items()},
                **self.result.to_dict(),
                "sequential": [c.to_dict() for c in self.sequential],
                "series": self.series, "healed": list(self.healed)}


SERIES_POINTS = 240  # per side and metric in the report: enough for a chart, small in the DB


def _side(samples: Samples | None) -> dict[str, Any]:
    if samples is None:
        return {"query": "", "values": [], "series": 0}
    values = samples.values[-SERIES_POINTS:] if samples.series <= 1 else samples.values
    if len(values) > SERIES_POINTS:  # several series: every k-th point keeps their shapes
        values = values[:: -(-len(values) // SERIES_POINTS)]
    return {"query": samples.query, "values": [round(v, 6) for v in values],
            "series": samples.series}


def series_record(series: Mapping[str, Any], step_seconds: float) -> dict[str, dict[str, Any]]:
    """What the report draws: each side's query and values (points ``step_seconds`` apart,
    series after series when a query matched several)."""
    return {name: {"step_seconds": step_seconds, "baseline": _side(pair.baseline),
                   "canary": _side(pair.canary)} for name, pair in series.items()}


def provider_for(template: CanaryTemplate, settings: Settings) -> MetricProvider:
    """The template's provider; the local platform's Prometheus unless the template says else."""
    options = dict(template.provider_options)
    if template.provider == "prometheus" and options.get("address") in (None, "local"):
        options["address"] = settings.url("prometheus")
        options["headers"] = {**dict(options.get("headers") or {}),
                              **credentials.basic_auth(settings, "prometheus")}
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
    heal: Callable[[], list[str]] | None = None,
) -> StepAnalysis:
    """Measure thresholds every ``interval_s`` for ``duration_s``, then judge the window.

    ``health`` names canary replicas that died (or an abort): the step then ends at once with
    an ERROR verdict, as a canary that crashed must not wait for its metrics to go stale.
    ``heal`` replaces dead *stable* replicas and says which: the step then starts its window
    again (thresholds, monitors and the judged samples all after the heal), as what was
    measured while the baseline was broken is no evidence about the canary. A heal that fails
    is tried again at the next look, and only STABLE_HEAL_TRIES failures in a row (or more than
    MAX_HEALS heals in one step) end the step ERROR."""
    began_wall = datetime.now(UTC)
    began = clock()
    measurements: dict[str, list[Measurement]] = {t.name: [] for t in template.thresholds}
    stopped_early = False
    dead: list[str] = []
    healed: list[str] = []
    watches = _watches(provider, template, variables)
    heal_errors: list[str] = []
    while True:
        failing = bool(heal_errors)
        fixed, heal_errors = _heal(heal, heal_errors)
        if fixed or (failing and not heal_errors):  # stable is whole again: start afresh
            healed.extend(fixed)
            began_wall, began = datetime.now(UTC), clock()
            measurements = {t.name: [] for t in template.thresholds}
            watches = _watches(provider, template, variables)
        if len(heal_errors) >= STABLE_HEAL_TRIES or len(healed) > MAX_HEALS:
            dead = [f"stable could not be kept healthy ({len(healed)} replaced"
                    f"{', last error: ' + heal_errors[-1] if heal_errors else ''})"]
            stopped_early = True
            break
        if heal_errors:  # stable is broken: nothing measured now counts; look again soon
            sleep(interval_s)
            continue
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
        for watch in watches:
            if isinstance(provider, SeriesProvider):
                watch.look(provider, clock() - began)
            else:
                watch.error = f"metric provider {provider.name!r} cannot list series"
        if any(w.metric.critical and w.crossed_at is not None for w in watches):
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
    checks = [w.check() for w in watches]
    result = _sequential_verdict(result, checks)
    points = {name: (_points(pair.baseline), _points(pair.canary)) for name, pair in series.items()}
    if healed:
        result = replace(result, reason=f"stable healed ({'; '.join(healed)}), judged after it; "
                                        f"{result.reason}")
    return StepAnalysis(step, weight, began_wall.isoformat(timespec="seconds"), elapsed,
                        stopped_early, points, result, tuple(checks),
                        series_record(series, template.step_seconds), healed=tuple(healed))


#: failed heals in a row, and heals in one step, after which the step ends ERROR
STABLE_HEAL_TRIES = 3
MAX_HEALS = 3


def _heal(heal: Callable[[], list[str]] | None,
          errors: list[str]) -> tuple[list[str], list[str]]:
    """One try of ``heal``: (what it replaced, the failures in a row so far)."""
    if heal is None:
        return [], []
    try:
        return heal(), []
    except Exception as exc:  # a failed heal is retried: the error is kept, not raised
        return [], [*errors, f"{type(exc).__name__}: {exc}"[:300]]


def pause_templates(steps: Sequence[Step], number: int) -> tuple[str, ...]:
    """The templates whose sequential tests watch pause step ``number`` (1-based): those of the
    next analysis step, or of the last one before it when none follows (none: no watch)."""
    after = [s.analysis for s in steps[number:] if s.analysis is not None]
    before = [s.analysis for s in steps[: number - 1] if s.analysis is not None]
    chosen = after[0] if after else (before[-1] if before else None)
    return chosen.templates if chosen is not None else ()


class PauseWatch:
    """The sequential monitors of a pause step, fed at every look while the pause waits (the
    pause polls for promote/abort anyway). There is no judge in a pause: only a critical
    rejection decides anything, and it ends the pause FAIL at once."""

    def __init__(self, provider: MetricProvider, templates: Mapping[str, CanaryTemplate], *,
                 variables: Mapping[str, str], step: int, weight: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.provider, self.step, self.weight, self.clock = provider, step, weight, clock
        self.names = tuple(templates)
        self.watches = [w for t in templates.values() for w in _watches(provider, t, variables)]
        #: the longest of the templates' pause_warmup_seconds: the looks start after it
        self.warmup_s = max((t.sequential_pause_warmup_s for t in templates.values()),
                            default=0.0)
        self.began_wall = datetime.now(UTC)
        self.began = clock()

    def look(self) -> StepAnalysis | None:
        """Feed every monitor once; the pause's FAIL record when a critical one rejected."""
        seconds = self.clock() - self.began
        if seconds < self.warmup_s:
            return None  # a fresh replica's first seconds are not the version's latency
        for watch in self.watches:
            if isinstance(self.provider, SeriesProvider):
                watch.look(self.provider, seconds)
            else:
                watch.error = f"metric provider {self.provider.name!r} cannot list series"
        if any(w.metric.critical and w.crossed_at is not None for w in self.watches):
            return self.record(stopped_early=True)
        return None

    def record(self, stopped_early: bool = False) -> StepAnalysis:
        """The pause as a step of the report: its monitors' p-values over time, its verdict."""
        checks = [w.check() for w in self.watches]
        watched = f"pause watched by the sequential tests ({', '.join(self.names)}) only"
        result = _sequential_verdict(AnalysisResult(Verdict.PASS, 100.0, watched, ()), checks)
        if result.verdict == Verdict.FAIL:
            result = replace(result, score=0.0)
        return StepAnalysis(self.step, self.weight, self.began_wall.isoformat(timespec="seconds"),
                            self.clock() - self.began, stopped_early, {}, result, tuple(checks),
                            kind="pause")

    @property
    def fed(self) -> bool:
        return any(w.history for w in self.watches)


def pause_watch(template_paths: Mapping[str, str], settings: Settings, service: str, step: int,
                weight: int) -> PauseWatch | None:
    """The watch of a pause at ``weight`` %, or None when there is nothing to watch (no
    traffic on the canary, or no template with a ``sequential:`` section)."""
    templates = {name: load_template(path) for name, path in template_paths.items()}
    templates = {name: t for name, t in templates.items() if t.sequential}
    if weight <= 0 or not templates:
        return None
    provider = provider_for(next(iter(templates.values())), settings)
    return PauseWatch(provider, templates, variables={"service": service}, step=step,
                      weight=weight)


@task(name="canary-analysis", cache_policy=NO_CACHE)
def analysis_task(
    template_path: str, target: str, service: str, step: int, weight: int, duration_s: float,
    interval_s: float, settings: Settings, health: Callable[[], list[str]] | None = None,
    heal: Callable[[], list[str]] | None = None,
) -> StepAnalysis:
    """``health``: what ends the step at once (dead replicas, an abort); default: the target's
    replica problems. ``heal``: replaces dead stable replicas (see :func:`analyze_step`)."""
    from tasks.targets import get_target

    template = load_template(template_path)
    provider = provider_for(template, settings)
    if health is None:
        deployed = get_target(target, settings)
        health = lambda: deployed.problems(service)  # noqa: E731
    return analyze_step(provider, template, variables={"service": service},
                        duration_s=duration_s, interval_s=interval_s, step=step, weight=weight,
                        health=health, heal=heal)
