"""The CrossGuard pack over the resources the real programs register under Pulumi mocks.

Each stack passes as declared; each made non-compliant (a public or unencrypted bucket, a
privileged pod) is rejected with the violated controls, both by the pure evaluation and through
the pulumi-policy objects the CLI would run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from stacks import mocks

RECORDER = mocks.install()  # mocks before the programs are imported

from policies.crossguard.evaluate import blocking, evaluate, load_enforcement  # noqa: E402
from policies.crossguard.pack import build_policies  # noqa: E402
from policies.crossguard.rules import ResourceView, Violation  # noqa: E402
from stacks import aws, azure, gcp, kubernetes  # noqa: E402
from stacks.cloud_config import load_aws, load_azure, load_gcp  # noqa: E402
from stacks.k8s_config import load_kubernetes  # noqa: E402
from tests.unit.stacks.helpers import (  # noqa: E402
    DIGEST,
    HTTPBIN,
    MODEL_SERVER,
    reader,
    run,
    tags,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning")
OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])

PROGRAMS: dict[str, Callable[[], Any]] = {
    "aws": lambda: aws.program(
        load_aws(reader(subnetIds=["subnet-0abc12345", "subnet-0def67890"])), tags()),
    "azure": lambda: azure.program(load_azure(reader()), tags()),
    "gcp": lambda: gcp.program(load_gcp(reader(location="europe-west1")), tags()),
    "kubernetes": lambda: kubernetes.program(load_kubernetes(reader(
        manifest=MODEL_SERVER, stableImage="registry.example.com/ms:1.0",
        canaryImage=f"registry.example.com/ms@{DIGEST}", canaryWeight="10")), tags()),
    "kubernetes-httpbin": lambda: kubernetes.program(load_kubernetes(reader(
        manifest=HTTPBIN, stableImage="registry.example.com/hb:2.0",
        canaryImage=f"registry.example.com/hb@{DIGEST}", canaryWeight="50")), tags()),
}


@pytest.fixture(scope="module")
def stacks() -> dict[str, list[ResourceView]]:
    return {cloud: run(program)[0].views() for cloud, program in PROGRAMS.items()}


def mutate(views: list[ResourceView], resource_type: str,
           change: Callable[[dict[str, Any]], None]) -> tuple[list[ResourceView], str]:
    """A copy of the stack with one resource's props changed; returns it and that URN."""
    target = next(v for v in views if v.type == resource_type)
    props = copy.deepcopy(dict(target.props))
    change(props)
    return [replace(v, props=props) if v is target else v for v in views], target.urn


def run_pack(views: list[ResourceView]) -> list[tuple[str, str | None]]:
    """What the engine does with the pack: every resource policy per resource, stack policies."""
    by_urn = {v.urn: PolicyResource(v.type, v.props, v.urn, v.name, OPTS, None, None, [], {})
              for v in views}
    for view in views:
        by_urn[view.urn].dependencies = [by_urn[u] for u in view.depends_on if u in by_urn]
    found: list[tuple[str, str | None]] = []

    def reporter(default_urn: str | None) -> Callable[[str, str | None], None]:
        def report(message: str, urn: str | None = None) -> None:
            found.append((message, urn or default_urn))

        return report

    for policy in build_policies(load_enforcement()):
        if isinstance(policy, ResourceValidationPolicy):
            for view in views:
                args = ResourceValidationArgs(view.type, view.props, view.urn, view.name, OPTS,
                                              None)
                policy.validate(args, reporter(view.urn))
        else:
            assert isinstance(policy, StackValidationPolicy)
            policy.validate(StackValidationArgs(list(by_urn.values())), reporter(None))
    return found


def only(violations: list[Violation], rule: str) -> Violation:
    matching = [v for v in violations if v.rule == rule]
    assert len(matching) == 1, violations
    return matching[0]


@pytest.mark.parametrize("cloud", sorted(PROGRAMS))
def test_each_stack_as_declared_passes_the_pack(stacks: dict[str, list[ResourceView]],
                                                cloud: str) -> None:
    assert evaluate(stacks[cloud]) == []
    assert run_pack(stacks[cloud]) == []


def test_a_bucket_without_its_public_access_block_is_rejected(
    stacks: dict[str, list[ResourceView]],
) -> None:
    views = [v for v in stacks["aws"]
             if v.type != "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
    violation = only(blocking(evaluate(views)), "storage-no-public-access")
    assert violation.urn is not None and violation.urn.endswith("::suite-model-artifacts")
    assert "ISO 27001 A.8.3" in violation.describe()
    ((message, urn),) = run_pack(views)
    assert urn == violation.urn and "controls: SOC 2 CC6.1, SOC 2 CC6.6" in message


def test_a_public_read_bucket_acl_is_rejected(stacks: dict[str, list[ResourceView]]) -> None:
    views, urn = mutate(stacks["aws"], "aws:s3/bucket:Bucket",
                        lambda p: p.update(acl="public-read"))
    violation = only(evaluate(views), "storage-no-public-access")
    assert (violation.urn, violation.blocking) == (urn, True)


def test_an_unencrypted_gcs_bucket_is_rejected(stacks: dict[str, list[ResourceView]]) -> None:
    views, urn = mutate(stacks["gcp"], "gcp:storage/bucket:Bucket",
                        lambda p: p.pop("encryption"))
    violation = only(evaluate(views), "storage-encryption-at-rest")
    assert violation.urn == urn
    assert "HIPAA 164.312(a)(2)(iv)" in violation.describe()


def test_public_blob_access_is_rejected(stacks: dict[str, list[ResourceView]]) -> None:
    views, urn = mutate(stacks["azure"], "azure-native:storage:StorageAccount",
                        lambda p: p.update(allowBlobPublicAccess=True))
    assert only(evaluate(views), "storage-no-public-access").urn == urn


def test_a_privileged_pod_is_rejected_with_its_control_mapping(
    stacks: dict[str, list[ResourceView]],
) -> None:
    def privileged(props: dict[str, Any]) -> None:
        container = props["spec"]["template"]["spec"]["containers"][0]
        container["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)

    views, urn = mutate(stacks["kubernetes"], "kubernetes:apps/v1:Deployment", privileged)
    found = blocking(evaluate(views))
    assert {v.rule for v in found} == {"k8s-no-privileged-containers"}
    assert all(v.urn == urn for v in found)
    controls = {str(c) for c in found[0].controls}
    assert {"SOC 2 CC6.8", "HIPAA 164.312(a)(1)", "GDPR Art. 32(1)(b)",
            "ISO 27001 A.8.2"} <= controls
    messages = [m for m, u in run_pack(views) if u == urn]
    assert any("is privileged" in m and "ISO 27001 A.8.2" in m for m in messages), messages


def test_missing_tags_are_rejected(stacks: dict[str, list[ResourceView]]) -> None:
    views, urn = mutate(stacks["aws"], "aws:eks/cluster:Cluster",
                        lambda p: p["tags"].pop("cost-center"))
    violation = only(evaluate(views), "required-tags")
    assert violation.urn == urn and "lacks cost-center" in violation.message
