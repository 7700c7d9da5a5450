"""Adapt the pure rules to pulumi-policy objects (the policy server itself starts in __main__)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyComplianceFramework,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import Severity as PolicySeverity

from policies.crossguard.compliance import format_controls, frameworks
from policies.crossguard.evaluate import ALL_RULES
from policies.crossguard.rules import Enforcement, ResourceView, Rule, decorate

PACK_NAME = "ultimate-suite-crossguard"


def _framework(rule: Rule) -> PolicyComplianceFramework:
    return PolicyComplianceFramework(
        name=", ".join(frameworks(rule.controls)),
        reference=format_controls(rule.controls),
        specification=rule.description,
    )


def views(args: StackValidationArgs) -> list[ResourceView]:
    """The stack's resources with the URNs each one depends on (directly or via a property)."""
    result = []
    for resource in args.resources:
        depends = {dep.urn for dep in resource.dependencies or []}
        for deps in (resource.property_dependencies or {}).values():
            depends |= {dep.urn for dep in deps}
        result.append(ResourceView(resource.resource_type, resource.urn, resource.props,
                                   frozenset(depends)))
    return result


def resource_policy(rule: Rule, level: Enforcement) -> ResourceValidationPolicy:
    validator = rule.validate
    assert validator is not None

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        validator(
            args.resource_type,
            args.props,
            lambda message: report_violation(
                decorate(message, rule.severity, rule.controls, rule.remediation), None
            ),
        )

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel(level.value),
        severity=PolicySeverity(rule.severity.value),
        framework=_framework(rule),
        tags=[str(control) for control in rule.controls],
        remediation_steps=rule.remediation,
    )


def stack_policy(rule: Rule, level: Enforcement) -> StackValidationPolicy:
    validator = rule.validate_stack
    assert validator is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        validator(
            views(args),
            lambda message, urn: report_violation(
                decorate(message, rule.severity, rule.controls, rule.remediation), urn
            ),
        )

    return StackValidationPolicy(
        name=f"{rule.name}-stack",
        description=f"{rule.description} (checked across the stack)",
        validate=validate,
        enforcement_level=EnforcementLevel(level.value),
        severity=PolicySeverity(rule.severity.value),
        framework=_framework(rule),
        tags=[str(control) for control in rule.controls],
        remediation_steps=rule.remediation,
    )


def build_policies(
    enforcement: Mapping[str, Enforcement], rules: Sequence[Rule] = ALL_RULES
) -> list[Policy]:
    policies: list[Policy] = []
    for rule in rules:
        level = enforcement.get(rule.name, rule.enforcement)
        if rule.validate is not None:
            policies.append(resource_policy(rule, level))
        if rule.validate_stack is not None:
            policies.append(stack_policy(rule, level))
    return policies
