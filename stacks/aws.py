"""AWS program: KMS-encrypted private versioned S3 bucket, ECR, EKS with node groups from config.

Identities are least-privilege: the cluster and node roles get only the AWS-managed EKS
policies they need, and the model server (via EKS Pod Identity, bound to one namespace and
service account) may read the artifact bucket and decrypt with its key, nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.cloud_config import AwsConfig
from stacks.config import NodePool
from stacks.tags import RequiredTags

MANAGED = "arn:aws:iam::aws:policy/"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
)


def assume_role_policy(service: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                       "Action": list(actions)}],
    })


def read_artifacts_policy(bucket_arn: str, key_arn: str) -> str:
    """What the model server may do: list and read model artifacts, decrypt them. Nothing else."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListArtifacts", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [bucket_arn]},
            {"Sid": "ReadArtifacts", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": [f"{bucket_arn}/*"]},
            {"Sid": "DecryptArtifacts", "Effect": "Allow", "Action": ["kms:Decrypt"],
             "Resource": [key_arn]},
        ],
    })


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def _role(name: str, service: str, policies: tuple[str, ...], tags: dict[str, str]) -> aws.iam.Role:
    role = aws.iam.Role(name, assume_role_policy=assume_role_policy(service), tags=tags)
    for policy in policies:
        aws.iam.RolePolicyAttachment(f"{name}-{policy}", role=role.name,
                                     policy_arn=MANAGED + policy,
                                     opts=pulumi.ResourceOptions(parent=role))
    return role


def artifact_bucket(prefix: str, tags: dict[str, str]) -> tuple[aws.s3.Bucket, aws.kms.Key]:
    key = aws.kms.Key(f"{prefix}-artifacts-key", description="Model artifacts (S3, ECR)",
                      enable_key_rotation=True, deletion_window_in_days=30, tags=tags)
    aws.kms.Alias(f"{prefix}-artifacts-key-alias", name=f"alias/{prefix}-artifacts",
                  target_key_id=key.key_id)
    bucket = aws.s3.Bucket(f"{prefix}-model-artifacts", force_destroy=False, tags=tags)
    child = pulumi.ResourceOptions(parent=bucket)
    aws.s3.BucketOwnershipControls(f"{prefix}-artifacts-ownership", bucket=bucket.id,
                                   rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
    aws.s3.BucketPublicAccessBlock(
        f"{prefix}-artifacts-public-access-block", bucket=bucket.id, block_public_acls=True,
        block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
        opts=child)
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{prefix}-artifacts-encryption", bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {
            "sse_algorithm": "aws:kms", "kms_master_key_id": key.arn}, "bucket_key_enabled": True}],
        opts=child)
    aws.s3.BucketVersioning(f"{prefix}-artifacts-versioning", bucket=bucket.id,
                            versioning_configuration={"status": "Enabled"}, opts=child)
    aws.s3.BucketPolicy(f"{prefix}-artifacts-tls-only", bucket=bucket.id,
                        policy=bucket.arn.apply(tls_only_policy), opts=child)
    return bucket, key


def registry(prefix: str, key: aws.kms.Key, tags: dict[str, str]) -> aws.ecr.Repository:
    return aws.ecr.Repository(
        f"{prefix}-model-server", name=f"{prefix}/model-server",
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration={"scan_on_push": True},
        encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
        tags=tags)


def node_group(
    cfg: AwsConfig, pool: NodePool, cluster: aws.eks.Cluster, role: aws.iam.Role,
    tags: dict[str, str], depends: list[pulumi.Resource],
) -> aws.eks.NodeGroup:
    return aws.eks.NodeGroup(
        f"{cfg.cluster.prefix}-{pool.name}", cluster_name=cluster.name, node_role_arn=role.arn,
        subnet_ids=list(cfg.subnet_ids), instance_types=[pool.machine_type],
        capacity_type="SPOT" if pool.spot else "ON_DEMAND", disk_size=pool.disk_size_gb,
        ami_type="AL2023_x86_64_STANDARD",
        scaling_config={"desired_size": max(pool.min_count, 1), "min_size": pool.min_count,
                        "max_size": pool.max_count},
        update_config={"max_unavailable": 1}, labels={**pool.labels, "pool": pool.name},
        tags=tags, opts=pulumi.ResourceOptions(depends_on=depends))


def program(cfg: AwsConfig, required: RequiredTags) -> dict[str, Any]:
    prefix, tags = cfg.cluster.prefix, required.as_dict()
    bucket, key = artifact_bucket(prefix, tags)
    repo = registry(prefix, key, tags)
    secrets_key = aws.kms.Key(f"{prefix}-cluster-secrets-key", enable_key_rotation=True,
                              description="EKS secrets envelope encryption",
                              deletion_window_in_days=30, tags=tags)
    cluster_role = _role(f"{prefix}-eks-cluster", "eks.amazonaws.com", CLUSTER_POLICIES, tags)
    node_role = _role(f"{prefix}-eks-nodes", "ec2.amazonaws.com", NODE_POLICIES, tags)
    cidrs = list(cfg.cluster.api_allowed_cidrs)
    cluster = aws.eks.Cluster(
        f"{prefix}-eks", role_arn=cluster_role.arn, version=cfg.cluster.kubernetes_version,
        vpc_config={"subnet_ids": list(cfg.subnet_ids), "endpoint_private_access": True,
                    "endpoint_public_access": bool(cidrs), "public_access_cidrs": cidrs or None},
        encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
        access_config={"authentication_mode": "API"},
        enabled_cluster_log_types=["api", "audit", "authenticator"], tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[cluster_role]))
    pools = [node_group(cfg, pool, cluster, node_role, tags, [node_role])
             for pool in cfg.cluster.node_pools]
    aws.eks.Addon(f"{prefix}-pod-identity-agent", cluster_name=cluster.name,
                  addon_name="eks-pod-identity-agent", tags=tags,
                  opts=pulumi.ResourceOptions(depends_on=pools))
    server_role = aws.iam.Role(
        f"{prefix}-model-server",
        assume_role_policy=assume_role_policy("pods.eks.amazonaws.com",
                                              ("sts:AssumeRole", "sts:TagSession")),
        tags=tags)
    aws.iam.RolePolicy(f"{prefix}-model-server-read-artifacts", role=server_role.id,
                       policy=pulumi.Output.all(bucket.arn, key.arn).apply(
                           lambda arns: read_artifacts_policy(arns[0], arns[1])))
    workload = cfg.cluster.workload
    aws.eks.PodIdentityAssociation(
        f"{prefix}-model-server", cluster_name=cluster.name, namespace=workload.namespace,
        service_account=workload.service_account, role_arn=server_role.arn, tags=tags)
    return {
        "artifactBucket": bucket.bucket,
        "registryUrl": repo.repository_url,
        "clusterName": cluster.name,
        "clusterEndpoint": cluster.endpoint,
        "modelServerRoleArn": server_role.arn,
        "nodePools": [pool.name for pool in cfg.cluster.node_pools],
    }
