"""The analysis template (policies/canary.yaml): loads, and every mistake names its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from policies.canary import DEFAULT_PATH, load, parse
from suite.errors import ConfigError
from tasks.canary.config import Direction, NanStrategy
from tasks.canary.thresholds import Condition

MINIMAL: dict[str, Any] = {
    "selectors": {"baseline": {"track": "stable"}, "canary": {"track": "canary"}},
    "metrics": [
        {"name": "latency", "group": "latency", "query": "m{${selector}}"},
        {"name": "errors", "group": "errors", "query": "e{${selector}}", "critical": True},
    ],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(changes)
    return data


def test_shipped_template_loads() -> None:
    template = load()
    assert template.source == str(DEFAULT_PATH)
    names = [m.name for m in template.metrics]
    assert names == ["latency_p50", "latency_p99", "errors", "cpu_seconds"]
    errors = template.metrics[2]
    assert errors.config.critical and errors.config.nan_strategy == NanStrategy.REPLACE
    assert errors.exposure_query is not None
    assert template.metrics[0].config.direction == Direction.INCREASE
    assert template.weights == {"latency": 40.0, "errors": 40.0}
    assert (template.pass_score, template.marginal_score) == (95.0, 75.0)
    check = template.thresholds[0].check
    assert check.success_condition == Condition(">=", 0.99) and check.failure_limit == 2
    assert template.provider == "prometheus"
    assert template.provider_options["address"] == "http://127.0.0.1:9090"


def test_model_server_template_tests_p50_spread_above_the_default_floor() -> None:
    template = load(DEFAULT_PATH.parent / "analysis" / "model-server.yaml")
    metrics = {m.name: m.config for m in template.metrics}
    p50, p90 = metrics["latency_p50"], metrics["latency_p90"]
    assert p50.spread_test and p50.spread_floor is None  # (allowed_increase - 1) x baseline mean
    assert (p50.allowed_increase, p50.allowed_spread_increase) == (1.5, 3.0)
    assert not p90.spread_test and p90.critical


def test_spread_floor_reaches_the_judge_config() -> None:
    data = copy.deepcopy(MINIMAL)
    data["metrics"][0]["spread_floor"] = 0.002
    assert parse(data).metrics[0].config.spread_floor == 0.002
    assert parse(MINIMAL).metrics[0].config.spread_floor is None


def test_minimal_template_takes_kayenta_defaults() -> None:
    template = parse(MINIMAL)
    config = template.metrics[0].config
    assert (config.confidence, config.tolerance, config.direction) == (0.98, 0.25, "either")
    assert template.weights == {} and template.thresholds == ()


BAD: list[tuple[str, Any, str]] = [
    ("unknown_top_level_key", with_changes(metric=[]), "metric: Extra inputs are not permitted"),
    (
        "bad_direction",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "direction": "up"}]
        ),
        "metrics[0].direction is 'up' (expected one of 'either', 'increase', 'decrease')",
    ),
    (
        "confidence_out_of_range",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "confidence": 1.2}]
        ),
        "metrics[0].confidence is 1.2",
    ),
    (
        "negative_spread_floor",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "spread_floor": -0.001}]
        ),
        "metrics[0].spread_floor is -0.001 (expected a finite number >= 0 in the metric's own "
        "units, e.g. 0.001 for 1 ms",
    ),
    (
        "spread_floor_with_a_unit",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "spread_floor": "1ms"}]
        ),
        "metrics[0].spread_floor is '1ms' (expected a finite number >= 0",
    ),
    (
        "spread_floor_as_a_switch",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "spread_floor": True}]
        ),
        "metrics[0].spread_floor is True (expected a finite number >= 0",
    ),
    (
        "unknown_metric_key",
        with_changes(
            metrics=[{"name": "a", "group": "g", "query": "m{${selector}}", "directon": "up"}]
        ),
        "metrics[0].directon: Extra inputs are not permitted",
    ),
    ("missing_selectors", {"metrics": MINIMAL["metrics"]}, "selectors: Field required"),
    (
        "query_without_selector",
        with_changes(metrics=[{"name": "a", "group": "g", "query": "up"}]),
        "metrics[0].query has no ${selector}",
    ),
    (
        "undefined_variable",
        with_changes(metrics=[{"name": "a", "group": "g", "query": "m{${selector},s='${svc}'}"}]),
        "metrics[0].query uses ${svc} which is not in variables",
    ),
    (
        "weight_for_a_group_without_metrics",
        with_changes(groups={"latency": 50, "cpu": 10}),
        "groups.cpu has a weight but no metric is in that group",
    ),
    ("weights_over_100", with_changes(groups={"latency": 70, "errors": 40}), "add up to 110"),
    (
        "weights_leave_nothing",
        with_changes(groups={"latency": 100}),
        "leaving nothing for errors",
    ),
    ("weights_short_of_100", with_changes(groups={"latency": 50, "errors": 40}), "add up to 90"),
    (
        "marginal_above_pass",
        with_changes(scores={"pass": 80, "marginal": 90}),
        "scores.marginal 90 is above scores.pass 80",
    ),
    ("score_out_of_range", with_changes(scores={"pass": 120}), "scores.pass: Input should be"),
    (
        "same_selectors",
        with_changes(selectors={"baseline": {"t": "x"}, "canary": {"t": "x"}}),
        "selectors.baseline and selectors.canary are the same",
    ),
    (
        "duplicate_metric",
        with_changes(metrics=[MINIMAL["metrics"][0], MINIMAL["metrics"][0]]),
        "metrics[1].name 'latency' is used twice",
    ),
    (
        "threshold_without_condition",
        with_changes(thresholds=[{"name": "t", "query": "q{${selector}}"}]),
        "thresholds[0] has neither success_condition nor failure_condition",
    ),
    (
        "bad_condition",
        with_changes(
            thresholds=[{"name": "t", "query": "q{${selector}}", "success_condition": "result ~ 1"}]
        ),
        "thresholds[0].success_condition: condition 'result ~ 1' is not understood",
    ),
    (
        "negative_limit",
        with_changes(
            thresholds=[
                {
                    "name": "t",
                    "query": "q{${selector}}",
                    "success_condition": ">= 1",
                    "failure_limit": -1,
                }
            ]
        ),
        "thresholds[0].failure_limit: Input should be greater than or equal to 0",
    ),
    ("not_a_mapping", [1, 2], "Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("data", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_template_names_the_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data, where="canary.yaml")
    assert str(info.value).startswith("canary.yaml: ")
    assert message in str(info.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "canary.yaml"
    broken.write_text("metrics: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(broken)
    with pytest.raises(ConfigError, match="cannot read canary template"):
        load(tmp_path / "missing.yaml")
