"""Required tags/labels: every taggable resource says who owns it, who pays, how sensitive it is.

The stacks import ``REQUIRED_TAG_KEYS`` and ``DATA_CLASSIFICATIONS`` from here, so the programs
and the policy cannot drift apart. Tags put on by a provider's ``default_tags`` are not visible
to an analyzer (they are not resource inputs): the stacks set them on each resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.crossguard import compliance
from policies.crossguard.rules import Report, Rule, Severity, dig

REQUIRED_TAG_KEYS: tuple[str, ...] = ("owner", "cost-center", "data-classification")
DATA_CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")

#: resource types that carry tags/labels, and where (types absent here with a ``tags`` input
#: on AWS/Azure, or ``labels`` on GCP, are checked too)
TAG_PATHS: dict[str, tuple[str, ...]] = {
    "aws:s3/bucket:Bucket": ("tags",),
    "aws:kms/key:Key": ("tags",),
    "aws:ecr/repository:Repository": ("tags",),
    "aws:eks/cluster:Cluster": ("tags",),
    "aws:eks/nodeGroup:NodeGroup": ("tags",),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": ("tags",),
    "aws:eks/addon:Addon": ("tags",),
    "aws:iam/role:Role": ("tags",),
    "aws:iam/policy:Policy": ("tags",),
    "azure-native:resources:ResourceGroup": ("tags",),
    "azure-native:storage:StorageAccount": ("tags",),
    "azure-native:containerregistry:Registry": ("tags",),
    "azure-native:containerservice:ManagedCluster": ("tags",),
    "azure-native:managedidentity:UserAssignedIdentity": ("tags",),
    "gcp:storage/bucket:Bucket": ("labels",),
    "gcp:kms/cryptoKey:CryptoKey": ("labels",),
    "gcp:artifactregistry/repository:Repository": ("labels",),
    "gcp:container/cluster:Cluster": ("resourceLabels",),
    "gcp:container/nodePool:NodePool": ("nodeConfig", "resourceLabels"),
}


def tag_path(resource_type: str, props: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Where this resource keeps its tags, or None when it cannot carry any."""
    if resource_type in TAG_PATHS:
        return TAG_PATHS[resource_type]
    if resource_type.startswith("kubernetes:") and "apiVersion" in props:
        return ("metadata", "labels")
    if resource_type.startswith(("aws:", "azure-native:")) and "tags" in props:
        return ("tags",)
    if resource_type.startswith("gcp:") and "labels" in props:
        return ("labels",)
    return None


def check_required_tags(resource_type: str, props: Mapping[str, Any], report: Report) -> None:
    path = tag_path(resource_type, props)
    if path is None:
        return
    tags = dig(props, *path)
    where = ".".join(path)
    if not isinstance(tags, Mapping):
        report(f"{where} is not set (required: {', '.join(REQUIRED_TAG_KEYS)})")
        return
    missing = [key for key in REQUIRED_TAG_KEYS if not str(tags.get(key) or "").strip()]
    if missing:
        report(f"{where} lacks {', '.join(missing)} (required: {', '.join(REQUIRED_TAG_KEYS)})")
    classification = tags.get("data-classification")
    if classification and classification not in DATA_CLASSIFICATIONS:
        report(f"{where}.data-classification is {classification!r} "
               f"(expected one of {', '.join(DATA_CLASSIFICATIONS)})")


RULES: tuple[Rule, ...] = (
    Rule(
        name="required-tags",
        description="Every taggable resource carries owner, cost-center and data-classification.",
        severity=Severity.MEDIUM,
        controls=compliance.ASSET_INVENTORY,
        remediation="Set suite:owner, suite:costCenter and suite:dataClassification in the "
        "stack config; the stacks put them on every resource (tags, labels, resourceLabels, "
        "metadata.labels).",
        validate=check_required_tags,
    ),
)
