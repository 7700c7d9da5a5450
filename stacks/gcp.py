"""GCP program: CMEK-encrypted private versioned GCS bucket, Artifact Registry, private GKE.

The nodes run as their own service account (log and metric writer, reader of this one
repository) instead of the Compute default account; the model server's Google service account
may only view objects of the artifact bucket and is bound to exactly one Kubernetes service
account through Workload Identity. Google's service agents get encrypt/decrypt on the keys that
protect their data and nothing more.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp

from stacks.cloud_config import GcpConfig
from stacks.config import NodePool
from stacks.tags import RequiredTags

ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
NODE_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter",
              "roles/monitoring.viewer")
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
ROTATION = "7776000s"  # 90 days


def service_agent(number: str, domain: str) -> str:
    return f"serviceAccount:service-{number}@{domain}.iam.gserviceaccount.com"


def _key(name: str, ring: gcp.kms.KeyRing, labels: dict[str, str]) -> gcp.kms.CryptoKey:
    return gcp.kms.CryptoKey(name, key_ring=ring.id, rotation_period=ROTATION, labels=labels,
                             opts=pulumi.ResourceOptions(parent=ring))


def _grant(
    name: str, key: gcp.kms.CryptoKey, member: pulumi.Input[str]
) -> gcp.kms.CryptoKeyIAMMember:
    return gcp.kms.CryptoKeyIAMMember(name, crypto_key_id=key.id, role=ENCRYPTER, member=member,
                                      opts=pulumi.ResourceOptions(parent=key))


def node_pool(
    cfg: GcpConfig, pool: NodePool, cluster: gcp.container.Cluster,
    account: gcp.serviceaccount.Account, labels: dict[str, str],
) -> gcp.container.NodePool:
    return gcp.container.NodePool(
        f"{cfg.cluster.prefix}-{pool.name}", cluster=cluster.name, location=cfg.location,
        autoscaling={"total_min_node_count": pool.min_count,
                     "total_max_node_count": pool.max_count},
        management={"auto_repair": True, "auto_upgrade": True},
        node_config={
            "machine_type": pool.machine_type, "disk_size_gb": pool.disk_size_gb,
            "spot": pool.spot, "service_account": account.email,
            "oauth_scopes": [CLOUD_PLATFORM], "labels": {**pool.labels, "pool": pool.name},
            "resource_labels": labels,
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "shielded_instance_config": {"enable_secure_boot": True,
                                         "enable_integrity_monitoring": True},
            "metadata": {"disable-legacy-endpoints": "true"},
        })


def cluster(
    cfg: GcpConfig, project_id: pulumi.Output[str], key: gcp.kms.CryptoKey,
    account: gcp.serviceaccount.Account, labels: dict[str, str], depends: list[pulumi.Resource],
) -> gcp.container.Cluster:
    c = gcp.container
    cidrs = [c.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
        cidr_block=cidr, display_name=f"allowed-{i}")
        for i, cidr in enumerate(cfg.cluster.api_allowed_cidrs)]
    return c.Cluster(
        f"{cfg.cluster.prefix}-gke",
        location=cfg.location,
        remove_default_node_pool=True,
        initial_node_count=1,
        min_master_version=cfg.cluster.kubernetes_version,
        network=cfg.network,
        subnetwork=cfg.subnetwork,
        ip_allocation_policy=c.ClusterIpAllocationPolicyArgs(),
        datapath_provider="ADVANCED_DATAPATH",
        enable_shielded_nodes=True,
        release_channel=c.ClusterReleaseChannelArgs(channel="REGULAR"),
        workload_identity_config=c.ClusterWorkloadIdentityConfigArgs(
            workload_pool=project_id.apply(lambda p: f"{p}.svc.id.goog")),
        private_cluster_config=c.ClusterPrivateClusterConfigArgs(
            enable_private_nodes=True, enable_private_endpoint=False,
            master_ipv4_cidr_block=cfg.master_cidr),
        master_authorized_networks_config=c.ClusterMasterAuthorizedNetworksConfigArgs(
            cidr_blocks=cidrs),
        database_encryption=c.ClusterDatabaseEncryptionArgs(state="ENCRYPTED", key_name=key.id),
        gateway_api_config=c.ClusterGatewayApiConfigArgs(channel="CHANNEL_STANDARD"),
        node_config=c.ClusterNodeConfigArgs(
            service_account=account.email, oauth_scopes=[CLOUD_PLATFORM],
            resource_labels=labels,
            workload_metadata_config=c.ClusterNodeConfigWorkloadMetadataConfigArgs(
                mode="GKE_METADATA")),
        deletion_protection=cfg.deletion_protection,
        resource_labels=labels,
        opts=pulumi.ResourceOptions(depends_on=depends),
    )


def _member(account: gcp.serviceaccount.Account) -> pulumi.Output[str]:
    return account.email.apply(lambda e: f"serviceAccount:{e}")


def node_identity(prefix: str, project_id: pulumi.Output[str], location: str,
                  repo: gcp.artifactregistry.Repository) -> gcp.serviceaccount.Account:
    """The nodes' own account: write logs and metrics, pull from this one repository."""
    nodes = gcp.serviceaccount.Account(f"{prefix}-gke-nodes", account_id=f"{prefix}-gke-nodes",
                                       display_name="GKE nodes (least privilege)")
    for role in NODE_ROLES:
        gcp.projects.IAMMember(f"{prefix}-gke-nodes-{role.rsplit('.', 1)[-1]}",
                               project=project_id, role=role, member=_member(nodes),
                               opts=pulumi.ResourceOptions(parent=nodes))
    gcp.artifactregistry.RepositoryIamMember(
        f"{prefix}-gke-nodes-pull", repository=repo.name, location=location,
        role="roles/artifactregistry.reader", member=_member(nodes),
        opts=pulumi.ResourceOptions(parent=nodes))
    return nodes


def model_server_identity(cfg: GcpConfig, project_id: pulumi.Output[str],
                          bucket: gcp.storage.Bucket) -> gcp.serviceaccount.Account:
    """Views objects of the artifact bucket; usable only by one Kubernetes service account."""
    prefix, workload = cfg.cluster.prefix, cfg.cluster.workload
    server = gcp.serviceaccount.Account(f"{prefix}-model-server",
                                        account_id=f"{prefix}-model-server",
                                        display_name="Model server (reads artifacts)")
    gcp.storage.BucketIAMMember(
        f"{prefix}-model-server-read-artifacts", bucket=bucket.name,
        role="roles/storage.objectViewer", member=_member(server),
        opts=pulumi.ResourceOptions(parent=server))
    gcp.serviceaccount.IAMMember(
        f"{prefix}-model-server-workload-identity", service_account_id=server.name,
        role="roles/iam.workloadIdentityUser",
        member=project_id.apply(
            lambda p: f"serviceAccount:{p}.svc.id.goog[{workload.namespace}/"
                      f"{workload.service_account}]"),
        opts=pulumi.ResourceOptions(parent=server))
    return server


def program(cfg: GcpConfig, required: RequiredTags) -> dict[str, Any]:
    prefix, labels = cfg.cluster.prefix, required.as_dict()
    project = gcp.organizations.get_project_output()
    number = project.number
    ring = gcp.kms.KeyRing(f"{prefix}-keys", location=cfg.location)
    artifacts_key = _key(f"{prefix}-artifacts", ring, labels)
    secrets_key = _key(f"{prefix}-cluster-secrets", ring, labels)
    gcs_agent = gcp.storage.get_project_service_account_output().email_address
    gcs_grant = _grant(f"{prefix}-gcs-agent-artifacts", artifacts_key,
                       gcs_agent.apply(lambda e: f"serviceAccount:{e}"))
    ar_grant = _grant(f"{prefix}-ar-agent-artifacts", artifacts_key,
                      number.apply(lambda n: service_agent(n, "gcp-sa-artifactregistry")))
    gke_grant = _grant(f"{prefix}-gke-agent-secrets", secrets_key,
                       number.apply(lambda n: service_agent(n, "container-engine-robot")))
    bucket = gcp.storage.Bucket(
        f"{prefix}-model-artifacts", location=cfg.location.upper(),
        uniform_bucket_level_access=True, public_access_prevention="enforced",
        versioning={"enabled": True}, encryption={"default_kms_key_name": artifacts_key.id},
        force_destroy=False, labels=labels, opts=pulumi.ResourceOptions(depends_on=[gcs_grant]))
    repo = gcp.artifactregistry.Repository(
        f"{prefix}-model-server", repository_id=f"{prefix}-model-server", format="DOCKER",
        location=cfg.location, kms_key_name=artifacts_key.id,
        docker_config={"immutable_tags": True}, labels=labels,
        opts=pulumi.ResourceOptions(depends_on=[ar_grant]))
    nodes = node_identity(prefix, project.project_id, cfg.location, repo)
    gke = cluster(cfg, project.project_id, secrets_key, nodes, labels, [gke_grant])
    for pool in cfg.cluster.node_pools:
        node_pool(cfg, pool, gke, nodes, labels)
    server = model_server_identity(cfg, project.project_id, bucket)
    return {
        "artifactBucket": bucket.name,
        "registryUrl": pulumi.Output.concat(cfg.location, "-docker.pkg.dev/", project.project_id,
                                            "/", repo.repository_id),
        "clusterName": gke.name,
        "clusterEndpoint": gke.endpoint,
        "modelServerServiceAccount": server.email,
        "nodePools": [pool.name for pool in cfg.cluster.node_pools],
    }
