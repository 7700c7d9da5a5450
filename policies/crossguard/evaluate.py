"""All CrossGuard rules, their enforcement from config, and a pure evaluation over resources.

``enforcement.json`` (next to this module) uses Pulumi's policy-pack config format, so the same
file works as ``pulumi preview --policy-pack-config``::

    {"all": "mandatory", "k8s-read-only-root-filesystem": {"enforcementLevel": "advisory"}}

``evaluate`` runs the rules without the policy server: tests feed it the resources registered
under Pulumi mocks, exactly as the engine would feed the analyzer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.crossguard import kubernetes, storage, tagging
from policies.crossguard.rules import (
    Enforcement,
    Report,
    ResourceView,
    Rule,
    StackReport,
    Violation,
)
from suite.errors import ConfigError

ALL_RULES: tuple[Rule, ...] = storage.RULES + tagging.RULES + kubernetes.RULES
ENFORCEMENT_FILE = Path(__file__).with_name("enforcement.json")
_LEVELS = ", ".join(level.value for level in Enforcement)


def _level(key: str, value: Any, source: str) -> Enforcement:
    raw = value.get("enforcementLevel") if isinstance(value, Mapping) else value
    try:
        return Enforcement(str(raw))
    except ValueError as exc:
        raise ConfigError(
            f"{source}: enforcement for {key!r} is {raw!r} (expected one of {_LEVELS})"
        ) from exc


def parse_enforcement(
    raw: Mapping[str, Any], rules: Sequence[Rule] = ALL_RULES, source: str = "policy config"
) -> dict[str, Enforcement]:
    """Rule name -> enforcement, from ``all`` plus per-rule entries; unknown names are errors."""
    known = {rule.name: rule.enforcement for rule in rules}
    result = dict(known)
    if "all" in raw:
        default = _level("all", raw["all"], source)
        result = {name: default for name in known}
    for key, value in raw.items():
        if key == "all":
            continue
        if key not in known:
            raise ConfigError(
                f"{source}: {key!r} is not a CrossGuard policy (known: {', '.join(sorted(known))})"
            )
        result[key] = _level(key, value, source)
    return result


def load_enforcement(path: Path = ENFORCEMENT_FILE) -> dict[str, Enforcement]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"policy config {path} does not exist") from exc
    except ValueError as exc:
        raise ConfigError(f"policy config {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"policy config {path} must hold a JSON object (policy name -> level)")
    return parse_enforcement(raw, source=str(path))


def evaluate(
    resources: Sequence[ResourceView],
    rules: Sequence[Rule] = ALL_RULES,
    enforcement: Mapping[str, Enforcement] | None = None,
) -> list[Violation]:
    """Every violation of every enabled rule, in rule order."""
    found: list[Violation] = []
    for rule in rules:
        level = (enforcement or {}).get(rule.name, rule.enforcement)
        if level is Enforcement.DISABLED:
            continue
        collect = _collector(found, rule, level)
        if rule.validate is not None:
            for resource in resources:
                rule.validate(resource.type, resource.props, _bound(collect, resource.urn))
        if rule.validate_stack is not None:
            rule.validate_stack(resources, collect)
    return found


def _bound(collect: StackReport, urn: str) -> Report:
    return lambda message: collect(message, urn)


def _collector(found: list[Violation], rule: Rule, level: Enforcement) -> StackReport:
    def collect(message: str, urn: str | None) -> None:
        found.append(Violation(rule.name, message, urn, rule.severity, level, rule.controls,
                               rule.remediation))

    return collect


def blocking(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.blocking]
