"""Kubernetes program under Pulumi mocks, for two services rendered from their manifests.

The model server (a model bound read-only, no secrets) and httpbin (Vault secrets as Secret
references, no model, three replicas) go through the same program; what differs comes from
their ``suite.yaml`` alone.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import kubernetes  # noqa: E402
from stacks.k8s_config import load_kubernetes  # noqa: E402
from tests.unit.stacks.helpers import (  # noqa: E402
    DIGEST,
    HTTPBIN,
    MODEL_SERVER,
    count,
    reader,
    run,
    tags,
    untagged,
)

STABLE = "registry.example.com/suite/model-server:1.4.2"
CANARY = f"registry.example.com/suite/model-server@{DIGEST}"
HTTPBIN_STABLE = "registry.example.com/teams/httpbin:2.0.1"
HTTPBIN_CANARY = f"registry.example.com/teams/httpbin@{DIGEST}"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def program(manifest: str = MODEL_SERVER, stable: str = STABLE, **values: Any) -> mocks.Recorder:
    cfg = load_kubernetes(reader(manifest=manifest, stableImage=stable, **values))
    recorder, _ = run(lambda: kubernetes.program(cfg, tags()))
    return recorder


@pytest.fixture(scope="module")
def canary() -> mocks.Recorder:
    """The model server in its dev-k8s namespace, a canary at 20 %."""
    return program(canaryImage=CANARY, canaryWeight="20", namespace="model-serving",
                   serviceAccount="model-server", hostnames=["models.example.com"],
                   serviceAccountAnnotations={"iam.gke.io/gcp-service-account": "ms@p.iam"})


@pytest.fixture(scope="module")
def httpbin() -> mocks.Recorder:
    """httpbin with its defaults: namespace and service account named after the service."""
    return program(HTTPBIN, HTTPBIN_STABLE, canaryImage=HTTPBIN_CANARY, canaryWeight="50",
                   egressPorts=[5432])


@pytest.fixture(scope="module", params=["model-server", "httpbin"])
def service(request: pytest.FixtureRequest, canary: mocks.Recorder,
            httpbin: mocks.Recorder) -> tuple[str, mocks.Recorder]:
    return request.param, {"model-server": canary, "httpbin": httpbin}[request.param]


def route_weights(stack: mocks.Recorder) -> dict[str, int]:
    refs = stack.one(ROUTE).inputs["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: int(ref["weight"]) for ref in refs}


def container_of(stack: mocks.Recorder, name: str) -> dict[str, Any]:
    deployment = stack.one(DEPLOYMENT, name)
    containers = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment.urn
    return dict(containers[0])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- the same shape for every service ----------------------------------------------------


def test_canary_release_declares_two_tracks_behind_one_route(
    service: tuple[str, mocks.Recorder],
) -> None:
    _, stack = service
    assert count(stack.resources) == {
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:ServiceAccount": 1,
        "suite:kubernetes:ServiceTrack": 2,
        DEPLOYMENT: 2,
        "kubernetes:core/v1:Service": 2,
        HPA: 2,
        PDB: 2,
        ROUTE: 1,
        POLICY: 2,
    }


def test_objects_are_named_after_the_service(service: tuple[str, mocks.Recorder]) -> None:
    name, stack = service
    assert sorted(d.name for d in stack.of_type(DEPLOYMENT)) == [f"{name}-canary",
                                                                 f"{name}-stable"]
    assert stack.one(ROUTE).name == name
    for deployment in stack.of_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["selector"]["matchLabels"]
        assert labels["app.kubernetes.io/name"] == name, deployment.urn
        assert container_of(stack, deployment.name)["name"] == name, deployment.urn


def test_pods_are_hardened(service: tuple[str, mocks.Recorder]) -> None:
    _, stack = service
    for deployment in stack.of_type(DEPLOYMENT):
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
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
        assert "replicas" not in deployment.inputs["spec"], "the HPA owns the replica count"


def test_every_kubernetes_object_carries_the_required_labels(
    service: tuple[str, mocks.Recorder],
) -> None:
    _, stack = service
    assert untagged(stack.resources) == []
    for deployment in stack.of_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["data-classification"] == "confidential", deployment.urn


def test_network_policies_deny_by_default_and_admit_the_gateway(
    service: tuple[str, mocks.Recorder],
) -> None:
    name, stack = service
    policies = {p.name: p.inputs["spec"] for p in stack.of_type(POLICY)}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = policies[f"{name}-traffic"]
    assert allow["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
    assert allow["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "gateway-system"}


def test_namespace_enforces_restricted_pod_security(service: tuple[str, mocks.Recorder]) -> None:
    _, stack = service
    namespace = stack.one("kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"), namespace.urn


def test_track_objects_wait_for_the_namespace_and_service_account(
    service: tuple[str, mocks.Recorder],
) -> None:
    _, stack = service
    namespace = stack.one("kubernetes:core/v1:Namespace").urn
    account = stack.one("kubernetes:core/v1:ServiceAccount").urn
    for kind in (DEPLOYMENT, "kubernetes:core/v1:Service", HPA, PDB, ROUTE):
        for resource in stack.of_type(kind):
            assert {namespace, account} <= resource.depends_on or (
                kind == ROUTE and namespace in resource.depends_on), resource.urn


# --- the model server, from its manifest ----------------------------------------------------


def test_route_weights_and_hostnames_come_from_config_and_manifest(
    canary: mocks.Recorder,
) -> None:
    route = canary.one(ROUTE)
    assert route_weights(canary) == {"model-server-stable": 80, "model-server-canary": 20}
    spec = route.inputs["spec"]
    assert spec["parentRefs"][0] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": "suite-gateway", "namespace": "gateway-system"}
    # route.host of the manifest first, then the stack's extra public names
    assert spec["hostnames"] == ["models.localhost", "models.example.com"], route.urn


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


def test_port_probe_and_resources_come_from_the_manifest(canary: mocks.Recorder) -> None:
    container = container_of(canary, "model-server-stable")
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # resources: {memory: 1Gi, cpus: 1}: requests = limits (Guaranteed, as enforced locally)
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}


def test_the_model_is_mounted_read_only_because_the_manifest_declares_it(
    canary: mocks.Recorder,
) -> None:
    deployment = canary.one(DEPLOYMENT, "model-server-canary")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert {"name": "model", "persistentVolumeClaim": {
        "claimName": "model-server-model", "readOnly": True}} in pod["volumes"], deployment.urn
    assert {"name": "model", "mountPath": "/model", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"]), deployment.urn
    env = env_of(pod["containers"][0])
    # the same variables the local target's model adapter sets
    assert (env["SERVE_MODEL_URI"], env["SERVE_MODEL_NAME"], env["MODEL_PATH"]) == (
        "/model/model.onnx", "digits", "/model/model.onnx")
    assert "SERVE_MODEL_VERSION" not in env, "no suite:modelVersion given"


def test_the_model_version_is_passed_when_the_stack_names_it() -> None:
    stack = program(modelVersion="7")
    env = env_of(container_of(stack, "model-server-stable"))
    assert (env["MODEL_VERSION"], env["SERVE_MODEL_VERSION"]) == ("7", "7")


def test_env_is_the_platforms_then_the_manifests(canary: mocks.Recorder) -> None:
    env = env_of(container_of(canary, "model-server-canary"))
    assert env["PORT"] == "8080" and env["SUITE_SERVICE"] == "model-server"
    assert env["SUITE_TRACK"] == "canary"
    assert env["SERVE_HOST"] == "0.0.0.0"


def test_autoscalers_and_disruption_budgets_per_track(canary: mocks.Recorder) -> None:
    hpas = {h.name: h.inputs["spec"] for h in canary.of_type(HPA)}
    # replicas: 2 is the stable floor; the ceiling defaults to 3x; the canary 1..replicas
    assert (hpas["model-server-stable"]["minReplicas"],
            hpas["model-server-stable"]["maxReplicas"]) == (2, 6)
    assert (hpas["model-server-canary"]["minReplicas"],
            hpas["model-server-canary"]["maxReplicas"]) == (1, 2)
    target = hpas["model-server-stable"]["metrics"][0]["resource"]["target"]
    assert target == {"type": "Utilization", "averageUtilization": 70}
    pdb = canary.one(PDB, "model-server-canary")
    assert pdb.inputs["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "model-server", "track": "canary"}, pdb.urn


def test_service_account_carries_the_identity_annotation(canary: mocks.Recorder) -> None:
    account = canary.one("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "ms@p.iam"}, account.urn
    assert account.inputs["automountServiceAccountToken"] is False, account.urn
    assert account.inputs["metadata"]["namespace"] == "model-serving", account.urn


def test_render_yaml_dir_adds_a_rendering_provider(tmp_path: Any) -> None:
    stack = program(renderYamlDir=str(tmp_path))
    provider = stack.one("pulumi:providers:kubernetes", "render-yaml")
    assert provider.inputs["renderYamlToDirectory"] == str(tmp_path), provider.urn


def test_the_track_adopts_the_old_model_server_track_type() -> None:
    from stacks.components import track

    assert track.OLD_COMPONENT_TYPE == "suite:kubernetes:ModelServerTrack"
    assert track.COMPONENT_TYPE == "suite:kubernetes:ServiceTrack"


@pytest.mark.usefixtures("fresh_mocks")
@pulumi.runtime.test
def test_kubernetes_outputs_report_weights_and_services() -> pulumi.Output[None]:
    cfg = load_kubernetes(reader(manifest=MODEL_SERVER, stableImage=STABLE, canaryImage=CANARY,
                                 canaryWeight="5"))
    outputs = kubernetes.program(cfg, tags())

    def check(values: list[Any]) -> None:
        weights, services, service, hostnames = values
        assert weights == {"stable": 95, "canary": 5}
        assert services == ["model-server-stable", "model-server-canary"]
        assert (service, hostnames) == ("model-server", ["models.localhost"])

    return pulumi.Output.all(outputs["weights"], outputs["services"], outputs["service"],
                             outputs["hostnames"]).apply(check)


# --- httpbin: secrets, no model -------------------------------------------------------------


def test_secrets_are_secret_references_never_values(httpbin: mocks.Recorder) -> None:
    for track in ("stable", "canary"):
        env = env_of(container_of(httpbin, f"httpbin-{track}"))
        assert env["DB_PASSWORD"] == {"secretKeyRef": {"name": "httpbin-db", "key": "password"}}
        assert env["API_TOKEN"] == {"secretKeyRef": {"name": "httpbin-upstream-api",
                                                     "key": "token"}}
        assert env["LOG_LEVEL"] == "info" and env["SUITE_SERVICE"] == "httpbin"
    assert httpbin.of_type("kubernetes:core/v1:Secret") == [], "the program holds no value"


def test_a_service_without_a_model_gets_no_model_volume(httpbin: mocks.Recorder) -> None:
    for deployment in httpbin.of_type(DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        assert [v["name"] for v in pod["volumes"]] == ["tmp"], deployment.urn
        assert [m["name"] for m in pod["containers"][0]["volumeMounts"]] == ["tmp"]
        env = env_of(pod["containers"][0])
        assert not {"MODEL_PATH", "SERVE_MODEL_URI"} & set(env), deployment.urn


def test_httpbin_defaults_namespace_account_and_host_to_its_name(httpbin: mocks.Recorder) -> None:
    assert httpbin.one("kubernetes:core/v1:Namespace").inputs["metadata"]["name"] == "httpbin"
    account = httpbin.one("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["metadata"]["name"] == "httpbin", account.urn
    assert httpbin.one(ROUTE).inputs["spec"]["hostnames"] == ["httpbin.localhost"]
    assert route_weights(httpbin) == {"httpbin-stable": 50, "httpbin-canary": 50}


def test_httpbin_resources_and_replicas_come_from_its_manifest(httpbin: mocks.Recorder) -> None:
    container = container_of(httpbin, "httpbin-stable")
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "256Mi"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    hpas = {h.name: h.inputs["spec"] for h in httpbin.of_type(HPA)}
    assert (hpas["httpbin-stable"]["minReplicas"], hpas["httpbin-stable"]["maxReplicas"]) == (
        3, 9)
    assert (hpas["httpbin-canary"]["minReplicas"], hpas["httpbin-canary"]["maxReplicas"]) == (
        1, 3)


def test_extra_egress_ports_are_opened(httpbin: mocks.Recorder) -> None:
    policy = httpbin.one(POLICY, "httpbin-traffic")
    ports = policy.inputs["spec"]["egress"][1]["ports"]
    assert ports == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 5432}]


EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"


def test_without_a_secret_store_no_secret_object_is_declared(httpbin: mocks.Recorder) -> None:
    assert httpbin.of_type(EXTERNAL_SECRET) == []


def test_a_secret_store_syncs_each_secret_from_vault_by_path_only() -> None:
    stack = program(HTTPBIN, HTTPBIN_STABLE, secretStore="suite-vault")
    synced = {r.inputs["metadata"]["name"]: r for r in stack.of_type(EXTERNAL_SECRET)}
    assert sorted(synced) == ["httpbin-db", "httpbin-upstream-api"]
    db = synced["httpbin-db"]
    assert db.inputs["spec"] == {
        "refreshInterval": "1h",
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": "suite-vault"},
        "target": {"name": "httpbin-db", "creationPolicy": "Owner", "deletionPolicy": "Retain"},
        "data": [{"secretKey": "password",
                  "remoteRef": {"key": "suite/services/httpbin/db", "property": "password"}}],
    }, db.urn
    # the pods wait for their Secrets to be synced
    deployment = stack.one(DEPLOYMENT, "httpbin-stable")
    assert {r.urn for r in synced.values()} <= deployment.depends_on, deployment.urn
