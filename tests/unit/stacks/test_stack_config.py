"""Stack config is validated before any resource exists; every error names its key."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.cloud_config import load_aws, load_azure, load_gcp
from stacks.config import get_cloud, get_node_pools
from stacks.k8s_config import load_kubernetes
from stacks.tags import load_tags
from suite.errors import ConfigError
from tests.unit.stacks.helpers import DIGEST, HTTPBIN, MANIFESTS, MODEL_SERVER, reader

SUBNETS = ["subnet-0abc12345", "subnet-0def67890"]
IMAGE = "registry.example.com/model-server:1.0.0"


@pytest.mark.parametrize(
    ("loader", "values", "needle"),
    [
        (get_cloud, {"cloud": "openstack"}, "suite:cloud is 'openstack' (expected one of aws"),
        (get_cloud, {}, "suite:cloud is not set"),
        (load_tags, {"owner": None}, "suite:owner is not set"),
        (load_tags, {"owner": "ML Platform"}, "suite:owner is 'ML Platform'"),
        (load_tags, {"dataClassification": "secret"}, "suite:dataClassification is 'secret'"),
        (load_aws, {"subnetIds": ["subnet-0abc12345"]}, "suite:subnetIds has 1 subnet"),
        (load_aws, {"subnetIds": ["subnet-0abc12345", "vpc-1"]}, "suite:subnetIds[1] is 'vpc-1'"),
        (load_aws, {"subnetIds": SUBNETS, "kubernetesVersion": "latest"},
         "suite:kubernetesVersion is 'latest'"),
        (load_aws, {"subnetIds": SUBNETS, "apiAllowedCidrs": ["10.0.0.1/8"]},
         "suite:apiAllowedCidrs[0] is '10.0.0.1/8'"),
        (load_aws, {"subnetIds": SUBNETS, "prefix": "Suite"}, "suite:prefix is 'Suite'"),
        (load_azure, {"nodePools": [{"name": "general-pool", "machineType": "Standard_D4s_v5"}]},
         "suite:nodePools[0].name is 'general-pool' (AKS expects"),
        (load_azure, {"registrySku": "Gold"}, "suite:registrySku is 'Gold'"),
        (load_gcp, {}, "suite:location is not set"),
        (load_gcp, {"location": "europe-west1", "prefix": "a-very-long-prefix-x"},
         "at most 17"),
        (load_gcp, {"location": "europe-west1", "masterCidr": "172.16.0.0/24"},
         "suite:masterCidr is '172.16.0.0/24'"),
    ],
)
def test_invalid_config_names_the_key(loader: Any, values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        loader(reader(**values))
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("pools", "needle"),
    [
        ([], "suite:nodePools is [] (expected a non-empty list"),
        ([{"name": "a1", "machineType": "x", "minCount": 5, "maxCount": 2}],
         "suite:nodePools[0].minCount is 5 but maxCount is 2"),
        ([{"name": "a1", "machineType": "x"}, {"name": "a1", "machineType": "y"}],
         "names ['a1'] more than once"),
        ([{"name": "a1", "machineType": "x", "gpu": True}], "suite:nodePools[0] has unknown keys"),
        ([{"name": "a1"}], "suite:nodePools[0].machineType is not set"),
        ([{"name": "a1", "machineType": "x", "maxCount": "many"}],
         "suite:nodePools[0].maxCount is 'many' (expected an integer)"),
        ([{"name": "a1", "machineType": "x", "spot": "yes"}], "suite:nodePools[0].spot is 'yes'"),
    ],
)
def test_invalid_node_pools_name_the_pool(pools: list[Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        get_node_pools(reader(nodePools=pools), "m6i.large")
    assert needle in str(err.value)


def test_node_pools_default_to_one_general_pool() -> None:
    (pool,) = get_node_pools(reader(), "e2-standard-4")
    assert (pool.name, pool.machine_type, pool.min_count, pool.max_count) == (
        "general", "e2-standard-4", 1, 3)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"stableImage": "registry.example.com/model-server"}, "has no tag or digest"),
        ({"stableImage": "registry.example.com/model-server:latest"}, "mutable :latest tag"),
        ({"stableImage": IMAGE, "canaryImage": "ms@sha256:abc"}, "suite:canaryImage"),
        ({"stableImage": IMAGE, "canaryWeight": "10"},
         "suite:canaryWeight is 10 but suite:canaryImage is not set"),
        ({"stableImage": IMAGE, "canaryImage": IMAGE, "canaryWeight": "101"},
         "suite:canaryWeight is 101 (expected 0..100)"),
        ({"stableImage": IMAGE, "maxReplicas": "1"},
         "suite:maxReplicas is 1 but the floor is 2 (expected max >= min)"),
        ({"stableImage": IMAGE, "canaryMinReplicas": "3", "canaryMaxReplicas": "2"},
         "suite:canaryMaxReplicas is 2 but the floor is 3"),
        ({"stableImage": IMAGE, "runAsUser": "0"}, "suite:runAsUser is 0"),
        ({"stableImage": IMAGE, "containerPort": "8081"},
         "suite:containerPort is set, but the service manifest owns it now (expected `port`"),
        ({"stableImage": IMAGE, "healthPath": "/health"}, "(expected `readiness`"),
        ({"stableImage": IMAGE, "minReplicas": "2"}, "(expected `replicas`"),
        ({"stableImage": IMAGE, "appName": "x"}, "(expected `service`"),
        ({"stableImage": IMAGE, "resources": {"limits": {"cpu": "1"}}},
         "(expected `resources: {memory, cpus}`"),
        ({"stableImage": IMAGE, "hostnames": ["Models.Example.com"]},
         "suite:hostnames[0] is 'Models.Example.com'"),
        ({"stableImage": IMAGE, "env": {"SERVE_HOST": "::"}},
         "suite:env.SERVE_HOST is also set by the manifest of 'model-server'"),
        ({"stableImage": IMAGE, "env": {"SUITE_TRACK": "x"}},
         "suite:env.SUITE_TRACK is set by the platform"),
        ({"stableImage": IMAGE, "env": {"SERVE_MODEL_URI": "/x"}},
         "suite:env.SERVE_MODEL_URI is set by the platform"),
        ({"stableImage": IMAGE, "egressPorts": [5432, 70000]},
         "suite:egressPorts[1] is 70000 (expected 1..65535)"),
        ({"stableImage": IMAGE, "modelClaim": "Models"}, "suite:modelClaim is 'Models'"),
        ({"stableImage": IMAGE, "service": "httpbin"},
         "suite:service is 'httpbin' but the manifest"),
        ({"stableImage": IMAGE, "service": "Bad Name"}, "suite:service is 'Bad Name'"),
        ({"stableImage": IMAGE, "namespace": "Serving"}, "suite:namespace is 'Serving'"),
    ],
)
def test_invalid_kubernetes_config_names_the_key(values: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubernetes(reader(manifest=MODEL_SERVER, **values))
    assert needle in str(err.value)


def test_a_model_claim_without_a_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="suite:modelClaim is set but 'httpbin' declares no "
                                          "`model:`"):
        load_kubernetes(reader(manifest=HTTPBIN, stableImage=IMAGE, modelClaim="httpbin-model"))


def test_no_service_named_says_which_keys_to_set() -> None:
    with pytest.raises(ConfigError) as err:
        load_kubernetes(reader(stableImage=IMAGE))
    message = str(err.value)
    assert "suite:manifest and suite:service are not set" in message
    assert "pulumi config set suite:manifest suite.yaml" in message


def test_a_missing_manifest_names_the_path(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubernetes(reader(stableImage=IMAGE, manifest=str(tmp_path)))
    assert "suite:manifest" in str(err.value) and "suite.yaml not found" in str(err.value)


def test_an_invalid_manifest_lists_its_problems(tmp_path: Any) -> None:
    (tmp_path / "suite.yaml").write_text("service: web\nport: eighty\nstrategy: {rolling: {}}\n")
    with pytest.raises(ConfigError) as err:
        load_kubernetes(reader(stableImage=IMAGE, manifest=str(tmp_path)))
    assert "port: 'eighty' is not an integer 1..65535" in str(err.value)


def test_relative_manifests_resolve_against_the_given_root() -> None:
    cfg = load_kubernetes(reader(stableImage=IMAGE, manifest="httpbin.yaml"), root=MANIFESTS)
    assert cfg.app == "httpbin" and cfg.spec.digest.startswith("sha256:")


def test_kubernetes_config_accepts_digests_and_pinned_tags() -> None:
    cfg = load_kubernetes(reader(manifest=MODEL_SERVER, stableImage=IMAGE,
                                 canaryImage=f"ms@{DIGEST}", canaryWeight="30"))
    assert cfg.weights == {"stable": 70, "canary": 30}
    assert cfg.canary_image == f"ms@{DIGEST}"


def test_registry_with_a_port_is_not_mistaken_for_a_tag() -> None:
    with pytest.raises(ConfigError, match="has no tag or digest"):
        load_kubernetes(reader(manifest=MODEL_SERVER, stableImage="127.0.0.1:5000/model-server"))
    cfg = load_kubernetes(reader(manifest=MODEL_SERVER,
                                 stableImage="127.0.0.1:5000/model-server:2.0"))
    assert cfg.stable_image.endswith(":2.0")
