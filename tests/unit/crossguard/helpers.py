"""Call a rule's validators directly with fake props and a collecting report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.crossguard.evaluate import ALL_RULES
from policies.crossguard.rules import ResourceView, Rule

RULES = {rule.name: rule for rule in ALL_RULES}


def check(rule_name: str, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    rule = RULES[rule_name]
    assert rule.validate is not None
    found: list[str] = []
    rule.validate(resource_type, props, found.append)
    return found


def check_stack(rule: Rule, resources: list[ResourceView]) -> list[tuple[str, str | None]]:
    assert rule.validate_stack is not None
    found: list[tuple[str, str | None]] = []
    rule.validate_stack(resources, lambda message, urn: found.append((message, urn)))
    return found


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:test::ultimate-suite::{resource_type}::{name}"
