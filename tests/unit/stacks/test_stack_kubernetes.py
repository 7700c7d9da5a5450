"""Kubernetes program under Pulumi mocks: tracks, weights from config, hardening, policies."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import kubernetes  # noqa: E402
from stacks.k8s_config import load_kubernetes  # noqa: E402
from tests.unit.stacks.helpers import DIGEST, count, reader, run, tags, untagged  # noqa: E402

STABLE = "registry.example.com/suite/model-server:1.4.2"
CANARY = f"registry.example.com/suite/model-server@{DIGEST}"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def program(**values: Any) -> mocks.Recorder:
    cfg = load_kubernetes(reader(stableImage=STABLE, **values))
    recorder, _ = run(lambda: kubernetes.program(cfg, tags()))
    return recorder


@pytest.fixture(scope="module")
def canary() -> mocks.Recorder:
    return program(canaryImage=CANARY, canaryWeight="20",
                   hostnames=["models.example.com"],
                   serviceAccountAnnotations={"iam.gke.io/gcp-service-account": "ms@p.iam"})


def route_weights(stack: mocks.Recorder) -> dict[str, int]:
    refs = stack.one(ROUTE).inputs["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: int(ref["weight"]) for ref in refs}


def test_canary_release_declares_two_tracks_behind_one_route(canary: mocks.Recorder) -> None:
    assert count(canary.resources) == {
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:ServiceAccount": 1,
        "suite:kubernetes:ModelServerTrack": 2,
        DEPLOYMENT: 2,
        "kubernetes:core/v1:Service": 2,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 2,
        "kubernetes:policy/v1:PodDisruptionBudget": 2,
        ROUTE: 1,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": 2,
    }


def test_route_weights_come_from_config(canary: mocks.Recorder) -> None:
    route = canary.one(ROUTE)
    assert route_weights(canary) == {"model-server-stable": 80, "model-server-canary": 20}
    spec = route.inputs["spec"]
    assert spec["parentRefs"][0] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": "suite-gateway", "namespace": "gateway-system"}
    assert spec["hostnames"] == ["models.example.com"], route.urn


@pytest.mark.parametrize(("weight", "expected"), [("0", (100, 0)), ("50", (50, 50)),
                                                  ("100", (0, 100))])
def test_shifting_traffic_is_a_config_change(weight: str, expected: tuple[int, int]) -> None:
    stack = program(canaryImage=CANARY, canaryWeight=weight)
    weights = route_weights(stack)
    assert (weights["model-server-stable"], weights["model-server-canary"]) == expected


def test_without_a_canary_only_stable_serves() -> None:
    stack = program()
    assert [d.name for d in stack.of_type(DEPLOYMENT)] == ["model-server-stable"]
    assert route_weights(stack) == {"model-server-stable": 100}


def test_each_track_runs_its_own_image(canary: mocks.Recorder) -> None:
    images = {d.name: d.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in canary.of_type(DEPLOYMENT)}
    assert images == {"model-server-stable": STABLE, "model-server-canary": CANARY}


def test_pods_are_hardened(canary: mocks.Recorder) -> None:
    for deployment in canary.of_type(DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, deployment.urn
        assert pod["securityContext"]["runAsNonRoot"] is True, deployment.urn
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        context = pod["containers"][0]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, deployment.urn
        assert context["readOnlyRootFilesystem"] is True, deployment.urn
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 10000, deployment.urn
        assert context["capabilities"] == {"drop": ["ALL"]}, deployment.urn
        assert context["privileged"] is False, deployment.urn
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]


def test_containers_have_requests_limits_and_probes(canary: mocks.Recorder) -> None:
    deployment = canary.one(DEPLOYMENT, "model-server-stable")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "replicas" not in deployment.inputs["spec"], "the HPA owns the replica count"


def test_autoscalers_and_disruption_budgets_per_track(canary: mocks.Recorder) -> None:
    hpas = {h.name: h.inputs["spec"] for h in
            canary.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")}
    assert (hpas["model-server-stable"]["minReplicas"],
            hpas["model-server-stable"]["maxReplicas"]) == (2, 6)
    assert (hpas["model-server-canary"]["minReplicas"],
            hpas["model-server-canary"]["maxReplicas"]) == (1, 2)
    target = hpas["model-server-stable"]["metrics"][0]["resource"]["target"]
    assert target == {"type": "Utilization", "averageUtilization": 70}
    pdb = canary.one("kubernetes:policy/v1:PodDisruptionBudget", "model-server-canary")
    assert pdb.inputs["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "model-server", "track": "canary"}, pdb.urn


def test_network_policies_deny_by_default_and_admit_the_gateway(canary: mocks.Recorder) -> None:
    policies = {p.name: p.inputs["spec"] for p in
                canary.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = policies["model-server-traffic"]["ingress"][0]
    assert allow["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "gateway-system"}


def test_namespace_enforces_restricted_pod_security(canary: mocks.Recorder) -> None:
    namespace = canary.one("kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"), namespace.urn


def test_service_account_carries_the_identity_annotation(canary: mocks.Recorder) -> None:
    account = canary.one("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "ms@p.iam"}, account.urn
    assert account.inputs["automountServiceAccountToken"] is False, account.urn


def test_every_kubernetes_object_carries_the_required_labels(canary: mocks.Recorder) -> None:
    assert untagged(canary.resources) == []
    for deployment in canary.of_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["data-classification"] == "confidential", deployment.urn


def test_render_yaml_dir_adds_a_rendering_provider(tmp_path: Any) -> None:
    stack = program(renderYamlDir=str(tmp_path))
    provider = stack.one("pulumi:providers:kubernetes", "render-yaml")
    assert provider.inputs["renderYamlToDirectory"] == str(tmp_path), provider.urn


@pytest.mark.usefixtures("fresh_mocks")
@pulumi.runtime.test
def test_kubernetes_outputs_report_weights_and_services() -> pulumi.Output[None]:
    cfg = load_kubernetes(reader(stableImage=STABLE, canaryImage=CANARY, canaryWeight="5"))
    outputs = kubernetes.program(cfg, tags())

    def check(values: list[Any]) -> None:
        weights, services = values
        assert weights == {"stable": 95, "canary": 5}
        assert services == ["model-server-stable", "model-server-canary"]

    return pulumi.Output.all(outputs["weights"], outputs["services"]).apply(check)


def test_track_objects_wait_for_the_namespace_and_service_account(
    canary: mocks.Recorder,
) -> None:
    namespace = canary.one("kubernetes:core/v1:Namespace").urn
    account = canary.one("kubernetes:core/v1:ServiceAccount").urn
    for kind in (DEPLOYMENT, "kubernetes:core/v1:Service",
                 "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                 "kubernetes:policy/v1:PodDisruptionBudget", ROUTE):
        for resource in canary.of_type(kind):
            assert {namespace, account} <= resource.depends_on or (
                kind == ROUTE and namespace in resource.depends_on), resource.urn
