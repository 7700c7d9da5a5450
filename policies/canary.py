"""The canary analysis template (``policies/canary.yaml``), loaded into validated value objects.

What is judged (metrics with their query, group and judge settings), how groups weigh, the
pass/marginal scores, and the threshold checks run beside the judge. Every problem names its key,
the value seen and what is expected, e.g.
``policies/canary.yaml: metrics[1].direction is 'up' (expected one of 'either', 'increase', ...)``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.files import read_yaml
from suite.errors import ConfigError
from tasks.canary.config import MetricConfig
from tasks.canary.thresholds import Condition, ThresholdCheck
from tasks.canary.warmup import WarmupConfig

DEFAULT_PATH = Path(__file__).with_name("canary.yaml")
_NAME = r"^[A-Za-z0-9_.:-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Provider(_Strict):
    name: str = "prometheus"
    address: str = "http://127.0.0.1:9090"
    timeout_seconds: float = Field(default=10.0, gt=0)


class _Selectors(_Strict):
    baseline: dict[str, str] = Field(min_length=1)
    canary: dict[str, str] = Field(min_length=1)


class _Scores(_Strict):
    pass_: float = Field(default=95.0, alias="pass", ge=0, le=100)
    marginal: float = Field(default=75.0, ge=0, le=100)


class _Metric(_Strict):
    name: str = Field(pattern=_NAME)
    group: str = Field(min_length=1)
    query: str = Field(min_length=1)
    exposure_query: str | None = None  # per-step exposure (e.g. requests) when query counts events
    # judge settings: None leaves MetricConfig's default (validated there, with the key's name)
    direction: str | None = None
    nan_strategy: str | None = None
    outlier_strategy: str | None = None
    outlier_factor: float | None = None
    critical: bool | None = None
    must_have_data: bool | None = None
    effect_size_measure: str | None = None
    allowed_increase: float | None = None
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None
    tolerance: float | None = None
    confidence: float | None = None
    test: str | None = None
    spread_test: bool | None = None
    allowed_spread_increase: float | None = None
    # metric units (seconds for a latency); taken as written so that MetricConfig, not a lax
    # float, answers `true` or "1ms" with how to write it
    spread_floor: Any = None
    muted: bool | None = None


class _Threshold(_Strict):
    name: str = Field(pattern=_NAME)
    query: str = Field(min_length=1)
    target: Literal["canary", "baseline"] = "canary"
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=0, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    count: int | None = Field(default=None, ge=1)


class _SequentialMetric(_Strict):
    name: str = Field(pattern=_NAME)
    kind: Literal["rate", "histogram"]
    # raw counters, no sum()/rate()/increase(): each series is followed for counter resets
    events_query: str | None = None  # rate: events (e.g. 5xx responses)
    exposure_query: str | None = None  # rate: exposure (e.g. all requests)
    buckets_query: str | None = None  # histogram: the *_bucket series (with their le label)
    direction: Literal["increase", "decrease", "either"] = "increase"
    critical: bool = True  # a rejection ends the step FAIL at once
    alpha: float | None = Field(default=None, gt=0, lt=1)


class _Sequential(_Strict):
    alpha: float = Field(default=0.01, gt=0, lt=1)
    # a pause's monitors start this long after it begins (a fresh replica's first seconds)
    pause_warmup_seconds: float = Field(default=0.0, ge=0)
    metrics: list[_SequentialMetric] = Field(min_length=1)


class _Warmup(_Strict):
    """Requests straight to each new canary replica before it takes traffic (tasks/warmup.py)."""

    path: str = "/healthz"
    method: Literal["GET", "POST", "PUT"] = "GET"
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    round_requests: int = Field(default=20, ge=1, le=1000)
    min_requests: int = Field(default=100, ge=1)
    max_requests: int = Field(default=5000, ge=1)
    settled_rounds: int = Field(default=2, ge=1, le=20)
    tolerance: float = Field(default=0.25, gt=0)
    max_seconds: float = Field(default=30.0, gt=0, le=600)
    timeout_seconds: float = Field(default=5.0, gt=0)


class _Template(_Strict):
    provider: _Provider = Field(default_factory=_Provider)
    step_seconds: float = Field(default=1.0, gt=0)
    window_seconds: float = Field(default=60.0, gt=0)
    selectors: _Selectors
    variables: dict[str, str] = Field(default_factory=dict)
    scores: _Scores = Field(default_factory=_Scores)
    groups: dict[str, float] = Field(default_factory=dict)
    metrics: list[_Metric] = Field(min_length=1)
    thresholds: list[_Threshold] = Field(default_factory=list)
    sequential: _Sequential | None = None
    warmup: _Warmup | None = None


@dataclass(frozen=True)
class TemplateMetric:
    name: str
    group: str
    query: str  # with ${selector} (and template variables) still to fill
    config: MetricConfig
    exposure_query: str | None = None


@dataclass(frozen=True)
class TemplateThreshold:
    name: str
    query: str
    target: str  # "canary" | "baseline": whose selector fills the query
    check: ThresholdCheck


@dataclass(frozen=True)
class SequentialMetric:
    """One anytime-valid monitor (tasks/canary/sequential.py) fed at every scrape."""

    name: str
    kind: str  # "rate" | "histogram"
    queries: Mapping[str, str]  # rate: events, exposure; histogram: buckets
    direction: str = "increase"
    critical: bool = True
    alpha: float = 0.01


@dataclass(frozen=True)
class CanaryTemplate:
    metrics: tuple[TemplateMetric, ...]
    baseline_labels: Mapping[str, str]
    canary_labels: Mapping[str, str]
    weights: Mapping[str, float] = field(default_factory=dict)
    pass_score: float = 95.0
    marginal_score: float = 75.0
    thresholds: tuple[TemplateThreshold, ...] = ()
    provider: str = "prometheus"
    provider_options: Mapping[str, Any] = field(default_factory=dict)
    step_seconds: float = 1.0
    window_seconds: float = 60.0
    variables: Mapping[str, str] = field(default_factory=dict)
    source: str = "template"
    sequential: tuple[SequentialMetric, ...] = ()  # off unless the template has `sequential:`
    sequential_pause_warmup_s: float = 0.0
    warmup: WarmupConfig | None = None  # off unless the template has `warmup:`

    def labels(self, target: str) -> Mapping[str, str]:
        return self.canary_labels if target == "canary" else self.baseline_labels


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text.replace("pass_", "pass")


def _pydantic_message(where: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = _location(error["loc"]) or "top level"
        seen = f" (got {error['input']!r})" if error["type"] != "missing" else ""
        problems.append(f"{key}: {error['msg']}{seen}")
    return f"{where}: " + "; ".join(problems)


def _check_variables(
    where: str,
    key: str,
    text: str,
    variables: Mapping[str, str],
    extra: frozenset[str] = frozenset(),
) -> set[str]:
    parsed = string.Template(text)
    if not parsed.is_valid():
        raise ConfigError(f"{where}: {key} {text!r} has a stray '$' (write $$ for a literal $)")
    names = set(parsed.get_identifiers())
    unknown = sorted(names - extra - set(variables))
    if unknown:
        raise ConfigError(
            f"{where}: {key} uses ${{{unknown[0]}}} which is not in variables "
            f"(known: {', '.join(sorted(variables)) or 'none'})"
        )
    return names


def _check_query(where: str, key: str, query: str, variables: Mapping[str, str]) -> None:
    names = _check_variables(where, key, query, variables, frozenset({"selector"}))
    if "selector" not in names:
        raise ConfigError(
            f"{where}: {key} has no ${{selector}} (expected it where the baseline/canary "
            "label matchers go, e.g. rate(http_requests_total{${selector}}[1m]))"
        )


def _metric(where: str, index: int, spec: _Metric, variables: Mapping[str, str]) -> TemplateMetric:
    key = f"metrics[{index}]"
    _check_query(where, f"{key}.query", spec.query, variables)
    if spec.exposure_query is not None:
        _check_query(where, f"{key}.exposure_query", spec.exposure_query, variables)
    settings = {
        k: v
        for k, v in spec.model_dump(exclude={"name", "group", "query", "exposure_query"}).items()
        if v is not None
    }
    try:
        config = MetricConfig(**settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}.{exc} (metric {spec.name!r})") from exc
    return TemplateMetric(spec.name, spec.group, spec.query, config, spec.exposure_query)


def _threshold(
    where: str, index: int, spec: _Threshold, variables: Mapping[str, str]
) -> TemplateThreshold:
    key = f"thresholds[{index}]"
    _check_query(where, f"{key}.query", spec.query, variables)
    if spec.success_condition is None and spec.failure_condition is None:
        raise ConfigError(
            f"{where}: {key} has neither success_condition nor failure_condition "
            "(expected at least one, e.g. success_condition: 'result >= 0.99')"
        )
    conditions = {}
    for name in ("success_condition", "failure_condition"):
        text = getattr(spec, name)
        try:
            conditions[name] = Condition.parse(text) if text is not None else None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {key}.{name}: {exc}") from exc
    check = ThresholdCheck(
        name=spec.name,
        failure_limit=spec.failure_limit,
        inconclusive_limit=spec.inconclusive_limit,
        consecutive_error_limit=spec.consecutive_error_limit,
        count=spec.count,
        **conditions,
    )
    return TemplateThreshold(spec.name, spec.query, spec.target, check)


_SEQUENTIAL_QUERIES = {
    "rate": {"events_query": "events", "exposure_query": "exposure"},
    "histogram": {"buckets_query": "buckets"},
}


def _sequential(where: str, raw: _Template) -> tuple[SequentialMetric, ...]:
    if raw.sequential is None:
        return ()
    _check_unique(where, "sequential.metrics", [m.name for m in raw.sequential.metrics])
    metrics = []
    for index, spec in enumerate(raw.sequential.metrics):
        key = f"sequential.metrics[{index}]"
        wanted = _SEQUENTIAL_QUERIES[spec.kind]
        queries = {}
        for name in ("events_query", "exposure_query", "buckets_query"):
            text = getattr(spec, name)
            if name in wanted and text is None:
                raise ConfigError(
                    f"{where}: {key}.{name} is missing (kind {spec.kind!r} needs "
                    f"{' and '.join(wanted)}, e.g. {name}: "
                    f"'{_SEQUENTIAL_EXAMPLES[name]}')"
                )
            if name not in wanted and text is not None:
                raise ConfigError(
                    f"{where}: {key}.{name} is set but kind is {spec.kind!r} "
                    f"(expected only {' and '.join(wanted)}; remove {name} or change kind)"
                )
            if text is not None:
                _check_query(where, f"{key}.{name}", text, raw.variables)
                queries[wanted[name]] = text
        alpha = spec.alpha if spec.alpha is not None else raw.sequential.alpha
        metrics.append(
            SequentialMetric(spec.name, spec.kind, queries, spec.direction, spec.critical, alpha)
        )
    return tuple(metrics)


_SEQUENTIAL_EXAMPLES = {
    "events_query": 'http_requests_total{${selector},code=~"5.."}',
    "exposure_query": "http_requests_total{${selector}}",
    "buckets_query": "http_request_duration_seconds_bucket{${selector}}",
}


def _check_groups(where: str, raw: _Template) -> None:
    used = {m.group for m in raw.metrics}
    for group, weight in raw.groups.items():
        if group not in used:
            raise ConfigError(
                f"{where}: groups.{group} has a weight but no metric is in that group "
                f"(metric groups: {', '.join(sorted(used))})"
            )
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{where}: groups.{group} is {weight!r} (expected a weight >= 0)")
    total = sum(raw.groups.values())
    unweighted = sorted(used - raw.groups.keys())
    if unweighted and total >= 100 - 1e-9:
        raise ConfigError(
            f"{where}: groups add up to {total:g}, leaving nothing for {', '.join(unweighted)} "
            "(expected less than 100 when some groups share the rest)"
        )
    if not unweighted and abs(total - 100) > 1e-9:
        raise ConfigError(
            f"{where}: groups add up to {total:g} (expected 100 when every group has a weight)"
        )


def _check_unique(where: str, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{where}: {key}[{index}].name {name!r} is used twice")
        seen.add(name)


def parse(data: Any, where: str = "canary template") -> CanaryTemplate:
    try:
        raw = _Template.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_message(where, exc)) from exc
    if raw.scores.marginal > raw.scores.pass_:
        raise ConfigError(
            f"{where}: scores.marginal {raw.scores.marginal:g} is above scores.pass "
            f"{raw.scores.pass_:g} (expected marginal <= pass)"
        )
    if raw.selectors.baseline == raw.selectors.canary:
        raise ConfigError(
            f"{where}: selectors.baseline and selectors.canary are the same "
            f"{raw.selectors.canary} (expected labels that tell the two apart)"
        )
    for side, labels in (("baseline", raw.selectors.baseline), ("canary", raw.selectors.canary)):
        for label, value in labels.items():
            _check_variables(where, f"selectors.{side}.{label}", value, raw.variables)
    _check_unique(where, "metrics", [m.name for m in raw.metrics])
    _check_unique(where, "thresholds", [t.name for t in raw.thresholds])
    _check_groups(where, raw)
    return CanaryTemplate(
        metrics=tuple(_metric(where, i, m, raw.variables) for i, m in enumerate(raw.metrics)),
        baseline_labels=dict(raw.selectors.baseline),
        canary_labels=dict(raw.selectors.canary),
        weights=dict(raw.groups),
        pass_score=raw.scores.pass_,
        marginal_score=raw.scores.marginal,
        thresholds=tuple(
            _threshold(where, i, t, raw.variables) for i, t in enumerate(raw.thresholds)
        ),
        provider=raw.provider.name,
        provider_options={"address": raw.provider.address, "timeout": raw.provider.timeout_seconds},
        step_seconds=raw.step_seconds,
        window_seconds=raw.window_seconds,
        variables=dict(raw.variables),
        source=where,
        sequential=_sequential(where, raw),
        sequential_pause_warmup_s=raw.sequential.pause_warmup_seconds if raw.sequential else 0.0,
        warmup=_warmup(where, raw.warmup),
    )


def _warmup(where: str, raw: _Warmup | None) -> WarmupConfig | None:
    if raw is None:
        return None
    try:
        return WarmupConfig(**{**raw.model_dump(), "headers": dict(raw.headers)})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load(path: Path | str = DEFAULT_PATH) -> CanaryTemplate:
    path = Path(path)
    return parse(read_yaml(path, "canary template"), where=str(path))
