"""The pulumi-policy adapter: metadata, enforcement and violation text, without the server."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.crossguard import storage
from policies.crossguard.evaluate import ALL_RULES, load_enforcement
from policies.crossguard.pack import build_policies
from tests.unit.crossguard.helpers import urn

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
PRIVILEGED = {"apiVersion": "apps/v1", "metadata": {"labels": {}}, "spec": {"template": {"spec": {
    "containers": [{"name": "server", "image": "ms:1.0",
                    "securityContext": {"privileged": True}}]}}}}


@pytest.fixture(scope="module")
def policies() -> dict[str, Any]:
    return {p.name: p for p in build_policies(load_enforcement())}


def test_each_rule_becomes_a_resource_and_maybe_a_stack_policy(policies: dict[str, Any]) -> None:
    expected = {r.name for r in ALL_RULES if r.validate} | {
        f"{r.name}-stack" for r in ALL_RULES if r.validate_stack}
    assert set(policies) == expected
    assert isinstance(policies["storage-no-public-access-stack"], StackValidationPolicy)


def test_policies_carry_severity_controls_remediation_and_enforcement(
    policies: dict[str, Any],
) -> None:
    privileged = policies["k8s-no-privileged-containers"]
    assert privileged.severity is Severity.CRITICAL
    assert privileged.enforcement_level is EnforcementLevel.MANDATORY
    assert "SOC 2 CC6.8" in privileged.framework.reference
    assert privileged.framework.name == "GDPR, HIPAA, ISO 27001, SOC 2"
    assert "ISO 27001 A.8.2" in privileged.tags
    assert "allowPrivilegeEscalation=false" in privileged.remediation_steps
    assert policies["k8s-read-only-root-filesystem"].enforcement_level is (
        EnforcementLevel.ADVISORY)


def run_resource_policy(policy: ResourceValidationPolicy, resource_type: str,
                        props: dict[str, Any]) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []

    def report(message: str, urn_: str | None = None) -> None:
        found.append((message, urn_))

    args = ResourceValidationArgs(resource_type, props, urn(resource_type, "x"), "x", OPTS, None)
    policy.validate(args, report)
    return found


def test_a_privileged_pod_is_rejected_with_its_control_mapping(policies: dict[str, Any]) -> None:
    found = run_resource_policy(policies["k8s-no-privileged-containers"],
                                "kubernetes:apps/v1:Deployment", PRIVILEGED)
    message = found[0][0]
    assert message.startswith("container 'server' is privileged")
    assert "severity: critical" in message
    assert "controls: SOC 2 CC6.8, HIPAA 164.312(a)(1), GDPR Art. 32(1)(b)" in message
    assert "Fix: Remove privileged" in message


def test_a_compliant_resource_reports_nothing(policies: dict[str, Any]) -> None:
    assert run_resource_policy(policies["storage-no-public-access"],
                               storage.AZ_BLOB_CONTAINER, {"publicAccess": "None"}) == []


def test_stack_policy_follows_dependencies_to_companions(policies: dict[str, Any]) -> None:
    def resource(kind: str, name: str, deps: list[PolicyResource]) -> PolicyResource:
        return PolicyResource(kind, {}, urn(kind, name), name, OPTS, None, None, deps, {})

    covered = resource(storage.S3_BUCKET, "covered", [])
    bare = resource(storage.S3_BUCKET, "bare", [])
    block = PolicyResource(storage.S3_PUBLIC_ACCESS_BLOCK, {}, urn("pab", "b"), "b", OPTS, None,
                           None, [], {"bucket": [covered]})
    found: list[tuple[str, str | None]] = []
    policies["storage-no-public-access-stack"].validate(
        StackValidationArgs([covered, bare, block]),
        lambda message, urn_=None: found.append((message, urn_)))
    assert [u for _, u in found] == [bare.urn]
    assert "S3 bucket 'bare' has no public access block" in found[0][0]
    assert "ISO 27001 A.8.3" in found[0][0]


def test_the_pack_entry_point_builds_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI runs; PolicyPack itself would start the gRPC server and block."""
    import runpy
    import sys
    from pathlib import Path

    import pulumi_policy

    built: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: built.update(kw))
    pack_dir = Path(__file__).resolve().parents[3] / "policies" / "crossguard"
    saved = list(sys.path)
    try:
        runpy.run_path(str(pack_dir), run_name="__main__")
        assert str(pack_dir) not in sys.path, "its kubernetes.py would shadow packages"
    finally:
        sys.path[:] = saved
    assert built["name"] == "ultimate-suite-crossguard"
    assert len(built["policies"]) == len(build_policies(load_enforcement()))
