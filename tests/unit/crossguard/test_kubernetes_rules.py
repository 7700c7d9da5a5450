"""Kubernetes workload rules over every workload kind's pod spec."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.crossguard.kubernetes import image_pin_problem, pod_spec
from tests.unit.crossguard.helpers import check

DIGEST = "sha256:" + "0f" * 32
GOOD_CONTAINER: dict[str, Any] = {
    "name": "server",
    "image": "registry.example.com/ms:1.2.3",
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                  "limits": {"cpu": "1", "memory": "1Gi"}},
    "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                        "runAsUser": 10001, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}},
}


def deployment(**changes: Any) -> dict[str, Any]:
    container = copy.deepcopy(GOOD_CONTAINER)
    pod: dict[str, Any] = {"containers": [container]}
    for key, value in changes.items():
        if key in ("hostNetwork", "hostPID", "initContainers"):
            pod[key] = value
        elif value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return {"apiVersion": "apps/v1", "spec": {"template": {"spec": pod}}}


DEPLOY = "kubernetes:apps/v1:Deployment"
PRIV, LATEST = "k8s-no-privileged-containers", "k8s-no-latest-tag"
LIMITS, ROOT, RO = "k8s-resource-limits", "k8s-run-as-non-root", "k8s-read-only-root-filesystem"


@pytest.mark.parametrize("rule", [PRIV, LATEST, LIMITS, ROOT, RO])
def test_a_hardened_deployment_passes_every_rule(rule: str) -> None:
    assert check(rule, DEPLOY, deployment()) == []


@pytest.mark.parametrize(
    ("rule", "changes", "expected"),
    [
        (PRIV, {"securityContext": {**GOOD_CONTAINER["securityContext"], "privileged": True}},
         "container 'server' is privileged"),
        (PRIV, {"securityContext": {"runAsNonRoot": True}},
         "does not set securityContext.allowPrivilegeEscalation=false"),
        (PRIV, {"securityContext": {**GOOD_CONTAINER["securityContext"],
                                    "capabilities": {"add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}}},
         "adds capabilities SYS_ADMIN"),
        (PRIV, {"hostNetwork": True}, "hostNetwork=true"),
        (LATEST, {"image": "registry.example.com/ms:latest"}, "uses the mutable :latest tag"),
        (LATEST, {"image": "registry.example.com/ms"}, "has no tag or digest"),
        (LATEST, {"image": "ms@sha256:123"}, "expected sha256:<64 hex>"),
        (LIMITS, {"resources": None}, "has no resources requests.cpu, requests.memory, limits"),
        (LIMITS, {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
         "has no resources limits.cpu, limits.memory"),
        (ROOT, {"securityContext": {"allowPrivilegeEscalation": False}},
         "may run as root (runAsNonRoot is not true)"),
        (ROOT, {"securityContext": {**GOOD_CONTAINER["securityContext"], "runAsUser": 0}},
         "runs as UID 0"),
        (RO, {"securityContext": {**GOOD_CONTAINER["securityContext"],
                                  "readOnlyRootFilesystem": False}},
         "has a writable root filesystem"),
    ],
)
def test_a_violation_names_the_container(rule: str, changes: dict[str, Any],
                                         expected: str) -> None:
    found = check(rule, DEPLOY, deployment(**changes))
    assert any(expected in message for message in found), found


def test_init_containers_are_checked_too() -> None:
    init = {**copy.deepcopy(GOOD_CONTAINER), "name": "migrate", "image": "busybox:latest"}
    found = check(LATEST, DEPLOY, deployment(initContainers=[init]))
    assert found == ["container 'migrate' image 'busybox:latest' uses the mutable :latest tag"]


def test_pod_level_run_as_non_root_covers_containers() -> None:
    container = {k: v for k, v in GOOD_CONTAINER.items() if k != "securityContext"}
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
           "containers": [container]}
    assert check(ROOT, "kubernetes:core/v1:Pod", {"spec": pod}) == []
    container["securityContext"] = {"runAsNonRoot": False}
    assert check(ROOT, "kubernetes:core/v1:Pod", {"spec": pod}) != []


@pytest.mark.parametrize(
    ("resource_type", "path"),
    [("kubernetes:core/v1:Pod", ("spec",)),
     ("kubernetes:apps/v1:StatefulSet", ("spec", "template", "spec")),
     ("kubernetes:apps/v1:DaemonSet", ("spec", "template", "spec")),
     ("kubernetes:batch/v1:Job", ("spec", "template", "spec")),
     ("kubernetes:batch/v1:CronJob", ("spec", "jobTemplate", "spec", "template", "spec"))],
)
def test_every_workload_kind_is_reduced_to_its_pod(resource_type: str,
                                                   path: tuple[str, ...]) -> None:
    props: dict[str, Any] = {"containers": [{"name": "c", "image": "x:latest"}]}
    for key in reversed(path):
        props = {key: props}
    assert pod_spec(resource_type, props) == {"containers": [{"name": "c", "image": "x:latest"}]}
    assert check(LATEST, resource_type, props) != []


def test_non_workloads_are_ignored() -> None:
    assert check(PRIV, "kubernetes:core/v1:Service", {"spec": {"containers": []}}) == []


@pytest.mark.parametrize(
    ("image", "problem"),
    [("ms:1.0", None), (f"ms@{DIGEST}", None), (f"ms:latest@{DIGEST}", None),
     ("localhost:5000/ms:2", None), ("localhost:5000/ms", "has no tag or digest"),
     ("ms:latest", "uses the mutable :latest tag"), ("", "is empty"),
     ("ms:-bad", "not a valid image tag")],
)
def test_image_pinning(image: str, problem: str | None) -> None:
    found = image_pin_problem(image)
    assert (found is None) if problem is None else (found is not None and problem in found)
