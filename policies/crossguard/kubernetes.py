"""Kubernetes workload rules: not privileged, pinned images, resource limits, non-root.

Every workload kind is reduced to its pod spec first, so one check covers Pods, Deployments,
StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.crossguard import compliance
from policies.crossguard.rules import Enforcement, Report, Rule, Severity, as_list, dig

_TEMPLATE = ("spec", "template", "spec")
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:core/v1:ReplicationController": _TEMPLATE,
    "kubernetes:apps/v1:Deployment": _TEMPLATE,
    "kubernetes:apps/v1:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1:DaemonSet": _TEMPLATE,
    "kubernetes:apps/v1:ReplicaSet": _TEMPLATE,
    "kubernetes:batch/v1:Job": _TEMPLATE,
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
DANGEROUS_CAPABILITIES = frozenset(
    {"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH", "BPF"}
)
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def image_pin_problem(image: str) -> str | None:
    """Why ``image`` is not pinned (by digest, or by a tag other than ``latest``), or None."""
    if not image:
        return "is empty"
    name, _, digest = image.partition("@")
    if digest:
        if _DIGEST.match(digest):
            return None
        return f"has digest {digest!r} (expected sha256:<64 hex>)"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag or digest (Kubernetes would pull :latest)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return "uses the mutable :latest tag"
    if not _TAG.match(tag):
        return f"has tag {tag!r}, which is not a valid image tag"
    return None


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return None
    spec = dig(props, *path)
    return spec if isinstance(spec, Mapping) else None


def containers(
    spec: Mapping[str, Any], *, ephemeral: bool = True
) -> Iterator[Mapping[str, Any]]:
    kinds = ["initContainers", "containers"] + (["ephemeralContainers"] if ephemeral else [])
    for kind in kinds:
        for container in as_list(spec.get(kind)):
            if isinstance(container, Mapping):
                yield container


def _label(container: Mapping[str, Any]) -> str:
    return f"container {container.get('name', '?')!r}"


def check_no_privileged(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            report(f"pod shares the node's namespaces ({field}=true)")
    for container in containers(spec):
        context = container.get("securityContext") or {}
        if context.get("privileged") is True:
            report(f"{_label(container)} is privileged (securityContext.privileged=true)")
        if context.get("allowPrivilegeEscalation") is not False:
            report(f"{_label(container)} does not set "
                   f"securityContext.allowPrivilegeEscalation=false")
        added = {str(c).upper() for c in as_list(dig(context, "capabilities", "add"))}
        risky = sorted(added & DANGEROUS_CAPABILITIES)
        if risky:
            report(f"{_label(container)} adds capabilities {', '.join(risky)}")


def check_pinned_images(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    for container in containers(spec):
        problem = image_pin_problem(str(container.get("image") or ""))
        if problem:
            report(f"{_label(container)} image {container.get('image')!r} {problem}")


def check_resource_limits(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    for container in containers(spec, ephemeral=False):
        resources = container.get("resources") or {}
        missing = [
            f"{kind}.{resource}"
            for kind in ("requests", "limits")
            for resource in ("cpu", "memory")
            if not dig(resources, kind, resource)
        ]
        if missing:
            report(f"{_label(container)} has no resources {', '.join(missing)}")


def check_run_as_non_root(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    pod_context = spec.get("securityContext") or {}
    for container in containers(spec):
        context = container.get("securityContext") or {}
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        if non_root is not True:
            report(f"{_label(container)} may run as root (runAsNonRoot is not true)")
        if user is not None and int(user) == 0:
            report(f"{_label(container)} runs as UID 0")


def check_read_only_root(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    for container in containers(spec):
        if dig(container, "securityContext", "readOnlyRootFilesystem") is not True:
            report(f"{_label(container)} has a writable root filesystem")


RULES: tuple[Rule, ...] = (
    Rule(
        name="k8s-no-privileged-containers",
        description="Containers are not privileged, cannot escalate, add no dangerous "
        "capabilities and do not share the node's namespaces.",
        severity=Severity.CRITICAL,
        controls=compliance.LEAST_PRIVILEGE_WORKLOADS,
        remediation="Remove privileged/hostNetwork/hostPID/hostIPC, set "
        "securityContext.allowPrivilegeEscalation=false and capabilities.drop=[ALL].",
        validate=check_no_privileged,
    ),
    Rule(
        name="k8s-no-latest-tag",
        description="Images are pinned by digest or by an immutable tag, never :latest.",
        severity=Severity.HIGH,
        controls=compliance.CHANGE_INTEGRITY,
        remediation="Deploy the digest the build produced (repo@sha256:...) or a release tag.",
        validate=check_pinned_images,
    ),
    Rule(
        name="k8s-resource-limits",
        description="Every container declares CPU and memory requests and limits.",
        severity=Severity.MEDIUM,
        controls=compliance.CAPACITY,
        remediation="Set resources.requests and resources.limits (cpu and memory) on each "
        "container (suite:resources in the stack config).",
        validate=check_resource_limits,
    ),
    Rule(
        name="k8s-run-as-non-root",
        description="Containers run as a non-root user.",
        severity=Severity.HIGH,
        controls=compliance.LEAST_PRIVILEGE_WORKLOADS,
        remediation="Set securityContext.runAsNonRoot=true (pod or container) and a non-zero "
        "runAsUser; build the image with a numeric USER.",
        validate=check_run_as_non_root,
    ),
    Rule(
        name="k8s-read-only-root-filesystem",
        description="Containers mount their root filesystem read-only.",
        severity=Severity.LOW,
        controls=compliance.LEAST_PRIVILEGE_WORKLOADS,
        remediation="Set securityContext.readOnlyRootFilesystem=true and mount an emptyDir "
        "where the process must write (e.g. /tmp).",
        enforcement=Enforcement.ADVISORY,
        validate=check_read_only_root,
    ),
)
