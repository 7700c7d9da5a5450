"""The rule model of the CrossGuard pack, free of the pulumi-policy server.

A rule's validators are pure functions over a resource type and its input properties (camelCase,
exactly as the engine hands them to an analyzer), reporting through a callback. That keeps every
check testable with a dict and a list, and lets the same rules run over resources collected from
Pulumi mocks (see ``evaluate``) or inside ``pulumi preview --policy-pack`` (see ``pack``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from policies.crossguard.compliance import Control, format_controls

#: report a violation of the resource being validated
Report = Callable[[str], None]
#: report a violation, naming the URN of the offending resource
StackReport = Callable[[str, str | None], None]
ResourceValidator = Callable[[str, Mapping[str, Any], Report], None]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Enforcement(StrEnum):
    """What a violation does: block the update, warn, or nothing."""

    ADVISORY = "advisory"
    MANDATORY = "mandatory"
    DISABLED = "disabled"


@dataclass(frozen=True)
class ResourceView:
    """One resource of a stack as a stack-level validator sees it."""

    type: str
    urn: str
    props: Mapping[str, Any]
    depends_on: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


StackValidator = Callable[[Sequence[ResourceView], StackReport], None]


@dataclass(frozen=True)
class Rule:
    """A policy: what it checks, how bad a violation is, which controls it evidences, the fix."""

    name: str
    description: str
    severity: Severity
    controls: tuple[Control, ...]
    remediation: str
    enforcement: Enforcement = Enforcement.MANDATORY
    validate: ResourceValidator | None = None
    validate_stack: StackValidator | None = None

    def __post_init__(self) -> None:
        if self.validate is None and self.validate_stack is None:
            raise ValueError(f"rule {self.name!r} has neither a resource nor a stack validator")


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    urn: str | None
    severity: Severity
    enforcement: Enforcement
    controls: tuple[Control, ...] = field(default=())
    remediation: str = ""

    @property
    def blocking(self) -> bool:
        return self.enforcement is Enforcement.MANDATORY

    def describe(self) -> str:
        return decorate(self.message, self.severity, self.controls, self.remediation)


def decorate(message: str, severity: Severity, controls: Sequence[Control], fix: str) -> str:
    """The violation text shown by the engine: finding, severity, control mapping, remediation."""
    return f"{message} [severity: {severity}; controls: {format_controls(controls)}] Fix: {fix}"


def dig(props: Any, *path: str | int) -> Any:
    """``props[a][b][c]`` or None when any step is missing (lists take int steps)."""
    current = props
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, Sequence) or isinstance(current, str):
                return None
            if not -len(current) <= step < len(current):
                return None
            current = current[step]
        else:
            if not isinstance(current, Mapping):
                return None
            current = current.get(step)
        if current is None:
            return None
    return current


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def dispatch(
    checks: Mapping[str, Callable[[Mapping[str, Any], Report], None]],
) -> ResourceValidator:
    """A validator that runs the check registered for the resource type, if any."""

    def validate(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
        check = checks.get(resource_type)
        if check is not None:
            check(props, report)

    return validate
