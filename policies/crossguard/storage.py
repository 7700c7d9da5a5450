"""Storage rules: encrypted at rest, never public, versioned — for S3, Azure Blob and GCS.

S3 splits a bucket's protections over companion resources (public access block, encryption
configuration, versioning), so each S3 concern also has a stack-level check that every bucket
has its companion, found through the companion's dependency on the bucket.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from policies.crossguard import compliance
from policies.crossguard.rules import (
    Report,
    ResourceView,
    Rule,
    Severity,
    StackReport,
    StackValidator,
    as_list,
    dig,
    dispatch,
)

S3_BUCKET = "aws:s3/bucket:Bucket"
S3_BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
S3_ACL = "aws:s3/bucketAcl:BucketAcl"
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
S3_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
S3_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
AZ_STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
AZ_BLOB_CONTAINER = "azure-native:storage:BlobContainer"
AZ_BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
AZ_REGISTRY = "azure-native:containerregistry:Registry"
GCS_BUCKET = "gcp:storage/bucket:Bucket"
GCS_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
GCS_IAM_BINDING = "gcp:storage/bucketIAMBinding:BucketIAMBinding"
GKE_CLUSTER = "gcp:container/cluster:Cluster"

S3_BUCKET_TYPES = (S3_BUCKET, S3_BUCKET_V2)
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


# --- encryption at rest -------------------------------------------------------------------------


def _s3_sse(props: Mapping[str, Any], report: Report) -> None:
    algorithms = [
        dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        for rule in as_list(props.get("rules"))
    ]
    if not any(a in KMS_ALGORITHMS for a in algorithms):
        report(
            f"S3 default encryption uses {algorithms or 'no algorithm'} "
            f"(expected one of {list(KMS_ALGORITHMS)} with a customer-managed KMS key)"
        )


def _s3_bucket_inline_sse(props: Mapping[str, Any], report: Report) -> None:
    inline = props.get("serverSideEncryptionConfiguration")
    if inline is not None:
        _s3_sse({"rules": as_list(dig(inline, "rule"))}, report)


def _eks_secrets(props: Mapping[str, Any], report: Report) -> None:
    config = props.get("encryptionConfig")
    if "secrets" not in as_list(dig(config, "resources")) or not dig(config, "provider", "keyArn"):
        report("EKS cluster does not encrypt Kubernetes secrets with a KMS key (encryptionConfig)")


def _azure_storage_encryption(props: Mapping[str, Any], report: Report) -> None:
    encryption = props.get("encryption")
    if not isinstance(encryption, Mapping) or not encryption.get("keySource"):
        report("storage account has no encryption block with a keySource")
        return
    if dig(encryption, "services", "blob", "enabled") is False:
        report("storage account disables blob encryption (encryption.services.blob.enabled=false)")


def _gcs_encryption(props: Mapping[str, Any], report: Report) -> None:
    if not dig(props, "encryption", "defaultKmsKeyName"):
        report("bucket has no customer-managed key (encryption.defaultKmsKeyName is not set)")


def _gke_secrets(props: Mapping[str, Any], report: Report) -> None:
    state = dig(props, "databaseEncryption", "state")
    if state != "ENCRYPTED" or not dig(props, "databaseEncryption", "keyName"):
        report(f"GKE application-layer secrets encryption is {state or 'not configured'} "
               f"(expected databaseEncryption.state=ENCRYPTED with a keyName)")


ENCRYPTION_CHECKS = {
    S3_SSE: _s3_sse,
    S3_BUCKET: _s3_bucket_inline_sse,
    S3_BUCKET_V2: _s3_bucket_inline_sse,
    EKS_CLUSTER: _eks_secrets,
    AZ_STORAGE_ACCOUNT: _azure_storage_encryption,
    GCS_BUCKET: _gcs_encryption,
    GKE_CLUSTER: _gke_secrets,
}


# --- public access ------------------------------------------------------------------------------


def _s3_bucket_acl(props: Mapping[str, Any], report: Report) -> None:
    if props.get("acl") in PUBLIC_ACLS:
        report(f"bucket ACL is {props['acl']!r} (expected private; ACLs disabled)")


def _s3_acl_resource(props: Mapping[str, Any], report: Report) -> None:
    _s3_bucket_acl(props, report)
    for grant in as_list(dig(props, "accessControlPolicy", "grants")):
        uri = dig(grant, "grantee", "uri")
        if uri in PUBLIC_GRANTEES:
            report(f"bucket ACL grants {dig(grant, 'permission')} to {uri}")


def _s3_public_access_block(props: Mapping[str, Any], report: Report) -> None:
    off = [flag for flag in PAB_FLAGS if props.get(flag) is not True]
    if off:
        report(f"public access block leaves {', '.join(off)} unset or false (expected all true)")


def _public_statement(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Allow" or statement.get("Condition"):
        return False
    principal = statement.get("Principal")
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS"))


def _s3_bucket_policy(props: Mapping[str, Any], report: Report) -> None:
    policy = props.get("policy")
    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        report("bucket policy is not valid JSON")
        return
    for statement in as_list(dig(document, "Statement")):
        if isinstance(statement, Mapping) and _public_statement(statement):
            report(f"bucket policy statement {statement.get('Sid', '')!r} allows Principal '*' "
                   f"without a Condition")


def _azure_account_public(props: Mapping[str, Any], report: Report) -> None:
    if props.get("allowBlobPublicAccess") is not False:
        report(f"allowBlobPublicAccess is {props.get('allowBlobPublicAccess')!r} (expected false)")


def _azure_container_public(props: Mapping[str, Any], report: Report) -> None:
    access = props.get("publicAccess")
    if access not in (None, "None"):
        report(f"blob container publicAccess is {access!r} (expected 'None')")


def _azure_registry_public(props: Mapping[str, Any], report: Report) -> None:
    if props.get("anonymousPullEnabled") is True:
        report("container registry allows anonymous pull (anonymousPullEnabled=true)")
    if props.get("adminUserEnabled") is True:
        report("container registry enables the shared admin user (adminUserEnabled=true)")


def _gcs_bucket_public(props: Mapping[str, Any], report: Report) -> None:
    if props.get("publicAccessPrevention") != "enforced":
        report(f"publicAccessPrevention is {props.get('publicAccessPrevention')!r} "
               f"(expected 'enforced')")
    if props.get("uniformBucketLevelAccess") is not True:
        report("uniformBucketLevelAccess is not true (object ACLs could make objects public)")


def _gcs_iam_public(props: Mapping[str, Any], report: Report) -> None:
    members = as_list(props.get("member")) + as_list(props.get("members"))
    public = [m for m in members if m in PUBLIC_MEMBERS]
    if public:
        report(f"bucket IAM grants {props.get('role')} to {', '.join(public)}")


PUBLIC_CHECKS = {
    S3_BUCKET: _s3_bucket_acl,
    S3_BUCKET_V2: _s3_bucket_acl,
    S3_ACL: _s3_acl_resource,
    S3_PUBLIC_ACCESS_BLOCK: _s3_public_access_block,
    S3_POLICY: _s3_bucket_policy,
    AZ_STORAGE_ACCOUNT: _azure_account_public,
    AZ_BLOB_CONTAINER: _azure_container_public,
    AZ_REGISTRY: _azure_registry_public,
    GCS_BUCKET: _gcs_bucket_public,
    GCS_IAM_MEMBER: _gcs_iam_public,
    GCS_IAM_BINDING: _gcs_iam_public,
}


# --- versioning ---------------------------------------------------------------------------------


def _s3_versioning(props: Mapping[str, Any], report: Report) -> None:
    status = dig(props, "versioningConfiguration", "status")
    if status != "Enabled":
        report(f"bucket versioning status is {status!r} (expected 'Enabled')")


def _azure_versioning(props: Mapping[str, Any], report: Report) -> None:
    if props.get("isVersioningEnabled") is not True:
        report("blob versioning is not enabled (isVersioningEnabled is not true)")


def _gcs_versioning(props: Mapping[str, Any], report: Report) -> None:
    if dig(props, "versioning", "enabled") is not True:
        report("bucket versioning is not enabled (versioning.enabled is not true)")


VERSIONING_CHECKS = {
    S3_VERSIONING: _s3_versioning,
    AZ_BLOB_SERVICE: _azure_versioning,
    GCS_BUCKET: _gcs_versioning,
}


# --- S3 companions (stack level) ----------------------------------------------------------------


def companion_check(companion_type: str, what: str) -> StackValidator:
    """A stack validator: every S3 bucket has a ``companion_type`` resource depending on it."""

    def validate(resources: Sequence[ResourceView], report: StackReport) -> None:
        covered: set[str] = set()
        for resource in resources:
            if resource.type == companion_type:
                covered |= resource.depends_on
        for bucket in resources:
            if bucket.type in S3_BUCKET_TYPES and bucket.urn not in covered:
                if companion_type == S3_SSE and bucket.props.get(
                    "serverSideEncryptionConfiguration"
                ):
                    continue
                kind = companion_type.rsplit(":", 1)[-1]
                report(f"S3 bucket {bucket.name!r} has no {what} ({kind})", bucket.urn)

    return validate


RULES: tuple[Rule, ...] = (
    Rule(
        name="storage-encryption-at-rest",
        description="Buckets, storage accounts and cluster secrets are encrypted at rest with "
        "managed keys.",
        severity=Severity.HIGH,
        controls=compliance.ENCRYPTION_AT_REST,
        remediation="S3: add a BucketServerSideEncryptionConfiguration with sseAlgorithm "
        "aws:kms and a KMS key; Azure: set encryption.keySource and keep blob encryption on; "
        "GCS: set encryption.defaultKmsKeyName; EKS/GKE: encrypt secrets with a KMS key.",
        validate=dispatch(ENCRYPTION_CHECKS),
        validate_stack=companion_check(S3_SSE, "default encryption configuration"),
    ),
    Rule(
        name="storage-no-public-access",
        description="Buckets, blob containers and registries are never publicly readable.",
        severity=Severity.CRITICAL,
        controls=compliance.PUBLIC_ACCESS,
        remediation="S3: attach a BucketPublicAccessBlock with all four flags true and no "
        "public ACL or policy; Azure: allowBlobPublicAccess=false, container publicAccess "
        "'None', no anonymous pull; GCS: publicAccessPrevention='enforced', uniform "
        "bucket-level access, no allUsers members.",
        validate=dispatch(PUBLIC_CHECKS),
        validate_stack=companion_check(S3_PUBLIC_ACCESS_BLOCK, "public access block"),
    ),
    Rule(
        name="storage-versioning",
        description="Model artifact storage keeps object versions so a bad write can be undone.",
        severity=Severity.MEDIUM,
        controls=compliance.VERSIONING,
        remediation="S3: add a BucketVersioning with status 'Enabled'; Azure: "
        "BlobServiceProperties.isVersioningEnabled=true; GCS: versioning.enabled=true.",
        validate=dispatch(VERSIONING_CHECKS),
        validate_stack=companion_check(S3_VERSIONING, "versioning configuration"),
    ),
)
