"""Azure program: private versioned blob storage, ACR, AKS with node pools from config.

No shared keys or admin users anywhere: storage is reached with Entra ID only
(``allowSharedKeyAccess=false``), ACR has no admin user or anonymous pull, AKS has local
accounts disabled. The model server gets a user-assigned identity federated to its Kubernetes
service account, with *Storage Blob Data Reader* on the models container only; the kubelet
identity gets *AcrPull* on the registry only.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_azure_native.containerservice as cs

from stacks.cloud_config import AzureConfig
from stacks.config import NodePool
from stacks.tags import RequiredTags

BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret


def role_definition(subscription_id: str, role: str) -> str:
    return (f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}")


def agent_pool(
    pool: NodePool, system: bool, tags: dict[str, str]
) -> cs.ManagedClusterAgentPoolProfileArgs:
    spot = pool.spot and not system  # system pools cannot run on spot capacity
    return cs.ManagedClusterAgentPoolProfileArgs(
        name=pool.name,
        mode="System" if system else "User",
        vm_size=pool.machine_type,
        os_type="Linux",
        os_sku="AzureLinux",
        type="VirtualMachineScaleSets",
        enable_auto_scaling=True,
        count=max(pool.min_count, 1),
        min_count=max(pool.min_count, 1) if system else pool.min_count,
        max_count=pool.max_count,
        os_disk_size_gb=pool.disk_size_gb,
        node_labels={**pool.labels, "pool": pool.name},
        scale_set_priority="Spot" if spot else None,
        scale_set_eviction_policy="Delete" if spot else None,
        tags=tags,
    )


def storage(
    cfg: AzureConfig, group: azure.resources.ResourceGroup, tags: dict[str, str]
) -> tuple[azure.storage.StorageAccount, azure.storage.BlobContainer]:
    name = cfg.cluster.prefix.replace("-", "") + "models"
    account = azure.storage.StorageAccount(
        name, resource_group_name=group.name, kind="StorageV2",
        sku={"name": cfg.storage_sku}, allow_blob_public_access=False,
        allow_shared_key_access=False, default_to_o_auth_authentication=True,
        enable_https_traffic_only=True, minimum_tls_version="TLS1_2",
        encryption={"key_source": "Microsoft.Storage", "require_infrastructure_encryption": True,
                    "services": {"blob": {"enabled": True, "key_type": "Account"},
                                 "file": {"enabled": True, "key_type": "Account"}}},
        tags=tags)
    azure.storage.BlobServiceProperties(
        f"{name}-blob-service", resource_group_name=group.name, account_name=account.name,
        blob_services_name="default", is_versioning_enabled=True,
        delete_retention_policy={"enabled": True, "days": 14},
        container_delete_retention_policy={"enabled": True, "days": 14},
        opts=pulumi.ResourceOptions(parent=account))
    container = azure.storage.BlobContainer(
        f"{name}-models", resource_group_name=group.name, account_name=account.name,
        container_name="models", public_access=azure.storage.PublicAccess.NONE,
        opts=pulumi.ResourceOptions(parent=account))
    return account, container


def cluster(
    cfg: AzureConfig, group: azure.resources.ResourceGroup, tags: dict[str, str]
) -> cs.ManagedCluster:
    pools = [agent_pool(pool, i == 0, tags) for i, pool in enumerate(cfg.cluster.node_pools)]
    return cs.ManagedCluster(
        f"{cfg.cluster.prefix}-aks",
        resource_group_name=group.name,
        dns_prefix=cfg.cluster.prefix,
        kubernetes_version=cfg.cluster.kubernetes_version,
        identity=cs.ManagedClusterIdentityArgs(type=cs.ResourceIdentityType.SYSTEM_ASSIGNED),
        agent_pool_profiles=pools,
        enable_rbac=True,
        disable_local_accounts=True,
        aad_profile=cs.ManagedClusterAADProfileArgs(managed=True, enable_azure_rbac=True),
        oidc_issuer_profile=cs.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
        security_profile=cs.ManagedClusterSecurityProfileArgs(
            workload_identity=cs.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True)),
        network_profile=cs.ContainerServiceNetworkProfileArgs(
            network_plugin="azure", network_plugin_mode="overlay",
            network_dataplane="cilium", network_policy="cilium"),
        api_server_access_profile=cs.ManagedClusterAPIServerAccessProfileArgs(
            authorized_ip_ranges=list(cfg.cluster.api_allowed_cidrs)),
        auto_upgrade_profile=cs.ManagedClusterAutoUpgradeProfileArgs(
            upgrade_channel="patch", node_os_upgrade_channel="NodeImage"),
        sku=cs.ManagedClusterSKUArgs(name="Base", tier="Standard"),
        tags=tags,
    )


def _kubelet_object_id(profile: Any) -> str:
    return str(profile["kubeletidentity"].object_id) if profile else ""


def program(cfg: AzureConfig, required: RequiredTags) -> dict[str, Any]:
    prefix, tags = cfg.cluster.prefix, required.as_dict()
    group = azure.resources.ResourceGroup(f"{prefix}-rg", location=cfg.location, tags=tags)
    account, container = storage(cfg, group, tags)
    registry = azure.containerregistry.Registry(
        prefix.replace("-", "") + "registry", resource_group_name=group.name,
        sku={"name": cfg.registry_sku}, admin_user_enabled=False, anonymous_pull_enabled=False,
        tags=tags)
    aks = cluster(cfg, group, tags)
    client = azure.authorization.get_client_config_output()
    azure.authorization.RoleAssignment(
        f"{prefix}-kubelet-acr-pull", scope=registry.id, principal_type="ServicePrincipal",
        principal_id=aks.identity_profile.apply(_kubelet_object_id),
        role_definition_id=client.subscription_id.apply(lambda s: role_definition(s, ACR_PULL)))
    identity = azure.managedidentity.UserAssignedIdentity(
        f"{prefix}-model-server", resource_group_name=group.name, tags=tags)
    workload = cfg.cluster.workload
    azure.managedidentity.FederatedIdentityCredential(
        f"{prefix}-model-server-federation", resource_group_name=group.name,
        resource_name_=identity.name, audiences=[TOKEN_AUDIENCE], subject=workload.subject,
        issuer=aks.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else ""),
        opts=pulumi.ResourceOptions(parent=identity))
    azure.authorization.RoleAssignment(
        f"{prefix}-model-server-blob-reader", scope=container.id,
        principal_type="ServicePrincipal", principal_id=identity.principal_id,
        role_definition_id=client.subscription_id.apply(
            lambda s: role_definition(s, BLOB_DATA_READER)))
    return {
        "resourceGroup": group.name,
        "storageAccount": account.name,
        "artifactContainer": container.name,
        "registryLoginServer": registry.login_server,
        "clusterName": aks.name,
        "modelServerClientId": identity.client_id,
        "nodePools": [pool.name for pool in cfg.cluster.node_pools],
    }
