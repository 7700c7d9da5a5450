"""Azure program under Pulumi mocks: private versioned storage, ACR, AKS, workload identity."""

from __future__ import annotations

import pulumi
import pytest

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import azure  # noqa: E402
from stacks.cloud_config import load_azure  # noqa: E402
from tests.unit.stacks.helpers import count, reader, run, tags, untagged  # noqa: E402

POOLS = [
    {"name": "system", "machineType": "Standard_D4s_v5", "minCount": 0, "maxCount": 3},
    {"name": "models", "machineType": "Standard_D8s_v5", "minCount": 0, "maxCount": 6,
     "spot": True},
]
CFG = load_azure(reader(nodePools=POOLS, location="westeurope", prefix="suite-test",
                        apiAllowedCidrs=["203.0.113.0/24"]))


@pytest.fixture(scope="module")
def stack() -> mocks.Recorder:
    recorder, _ = run(lambda: azure.program(CFG, tags()))
    return recorder


def test_azure_program_declares_the_expected_resources(stack: mocks.Recorder) -> None:
    assert count(stack.resources) == {
        "azure-native:resources:ResourceGroup": 1,
        "azure-native:storage:StorageAccount": 1,
        "azure-native:storage:BlobServiceProperties": 1,
        "azure-native:storage:BlobContainer": 1,
        "azure-native:containerregistry:Registry": 1,
        "azure-native:containerservice:ManagedCluster": 1,
        "azure-native:managedidentity:UserAssignedIdentity": 1,
        "azure-native:managedidentity:FederatedIdentityCredential": 1,
        "azure-native:authorization:RoleAssignment": 2,
    }


def test_storage_is_encrypted_private_and_versioned(stack: mocks.Recorder) -> None:
    account = stack.one("azure-native:storage:StorageAccount")
    inputs = account.inputs
    assert inputs["allowBlobPublicAccess"] is False, account.urn
    assert inputs["allowSharedKeyAccess"] is False, account.urn
    assert inputs["minimumTlsVersion"] == "TLS1_2", account.urn
    assert inputs["encryption"]["keySource"] == "Microsoft.Storage", account.urn
    assert inputs["encryption"]["requireInfrastructureEncryption"] is True, account.urn
    assert inputs["encryption"]["services"]["blob"]["enabled"] is True, account.urn
    service = stack.one("azure-native:storage:BlobServiceProperties")
    assert service.inputs["isVersioningEnabled"] is True, service.urn
    container = stack.one("azure-native:storage:BlobContainer")
    assert container.inputs["publicAccess"] == "None", container.urn


def test_registry_has_no_admin_user_and_no_anonymous_pull(stack: mocks.Recorder) -> None:
    registry = stack.one("azure-native:containerregistry:Registry")
    assert registry.inputs["adminUserEnabled"] is False, registry.urn
    assert registry.inputs["anonymousPullEnabled"] is False, registry.urn


def test_aks_pools_follow_config_and_the_first_is_the_system_pool(stack: mocks.Recorder) -> None:
    cluster = stack.one("azure-native:containerservice:ManagedCluster")
    pools = {p["name"]: p for p in cluster.inputs["agentPoolProfiles"]}
    assert pools["system"]["mode"] == "System", cluster.urn
    assert pools["system"]["minCount"] == 1, "a system pool keeps at least one node"
    assert "scaleSetPriority" not in pools["system"], cluster.urn
    assert pools["models"]["mode"] == "User", cluster.urn
    assert pools["models"]["scaleSetPriority"] == "Spot", cluster.urn
    assert pools["models"]["vmSize"] == "Standard_D8s_v5", cluster.urn
    assert cluster.inputs["disableLocalAccounts"] is True, cluster.urn
    assert cluster.inputs["securityProfile"]["workloadIdentity"]["enabled"] is True
    assert cluster.inputs["apiServerAccessProfile"]["authorizedIPRanges"] == ["203.0.113.0/24"]


def test_identities_get_one_role_each_on_one_scope(stack: mocks.Recorder) -> None:
    roles = {r.name: r.inputs for r in
             stack.of_type("azure-native:authorization:RoleAssignment")}
    reader_role = roles["suite-test-model-server-blob-reader"]
    assert reader_role["roleDefinitionId"].endswith(azure.BLOB_DATA_READER)
    assert reader_role["scope"] == "suitetestmodels-models-id", "scoped to the container only"
    assert reader_role["principalId"] == "suite-test-model-server-principal"
    pull = roles["suite-test-kubelet-acr-pull"]
    assert pull["roleDefinitionId"].endswith(azure.ACR_PULL)
    assert pull["scope"] == "suitetestregistry-id"
    assert pull["principalId"] == "suite-test-aks-kubelet"
    federation = stack.one("azure-native:managedidentity:FederatedIdentityCredential")
    assert federation.inputs["subject"] == "system:serviceaccount:model-serving:model-server"
    assert federation.inputs["issuer"] == "https://oidc.mock/suite-test-aks/", federation.urn


def test_every_taggable_azure_resource_carries_the_required_tags(stack: mocks.Recorder) -> None:
    assert untagged(stack.resources) == []
    cluster = stack.one("azure-native:containerservice:ManagedCluster")
    assert all(p["tags"]["owner"] == "ml-platform" for p in cluster.inputs["agentPoolProfiles"])


@pytest.mark.usefixtures("fresh_mocks")
@pulumi.runtime.test
def test_azure_outputs_name_storage_registry_and_identity() -> pulumi.Output[None]:
    outputs = azure.program(CFG, tags())

    def check(values: list[object]) -> None:
        registry, client_id, pools = values
        assert registry == "suitetestregistry.azurecr.io"
        assert client_id == "suite-test-model-server-client"
        assert pools == ["system", "models"]

    return pulumi.Output.all(outputs["registryLoginServer"], outputs["modelServerClientId"],
                             outputs["nodePools"]).apply(check)
