"""Storage rules, each with compliant and non-compliant props (camelCase, as the engine sends)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.crossguard import storage
from policies.crossguard.rules import ResourceView
from tests.unit.crossguard.helpers import RULES, check, check_stack, urn

ENC, PUB, VER = "storage-encryption-at-rest", "storage-no-public-access", "storage-versioning"
KMS_RULE = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms",
                                                   "kmsMasterKeyId": "arn:aws:kms:key"}}
AES_RULE = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
GOOD_ACCOUNT = {"allowBlobPublicAccess": False,
                "encryption": {"keySource": "Microsoft.Storage",
                               "services": {"blob": {"enabled": True}}}}
GOOD_GCS = {"publicAccessPrevention": "enforced", "uniformBucketLevelAccess": True,
            "encryption": {"defaultKmsKeyName": "projects/p/keys/k"},
            "versioning": {"enabled": True}}


def policy(statement: dict[str, Any]) -> dict[str, str]:
    return {"policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}


CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    # rule, type, props, expected substring (None: compliant)
    (ENC, storage.S3_SSE, {"rules": [KMS_RULE]}, None),
    (ENC, storage.S3_SSE, {"rules": [AES_RULE]}, "uses ['AES256']"),
    (ENC, storage.S3_SSE, {"rules": []}, "uses no algorithm"),
    (ENC, storage.S3_BUCKET, {}, None),
    (ENC, storage.S3_BUCKET, {"serverSideEncryptionConfiguration": {"rule": AES_RULE}}, "AES256"),
    (ENC, storage.EKS_CLUSTER, {"encryptionConfig": {"resources": ["secrets"],
                                                     "provider": {"keyArn": "arn"}}}, None),
    (ENC, storage.EKS_CLUSTER, {}, "does not encrypt Kubernetes secrets"),
    (ENC, storage.AZ_STORAGE_ACCOUNT, GOOD_ACCOUNT, None),
    (ENC, storage.AZ_STORAGE_ACCOUNT, {"allowBlobPublicAccess": False}, "no encryption block"),
    (ENC, storage.AZ_STORAGE_ACCOUNT,
     {"encryption": {"keySource": "Microsoft.Storage", "services": {"blob": {"enabled": False}}}},
     "disables blob encryption"),
    (ENC, storage.GCS_BUCKET, GOOD_GCS, None),
    (ENC, storage.GCS_BUCKET, {**GOOD_GCS, "encryption": None}, "defaultKmsKeyName is not set"),
    (ENC, storage.GKE_CLUSTER, {"databaseEncryption": {"state": "ENCRYPTED", "keyName": "k"}},
     None),
    (ENC, storage.GKE_CLUSTER, {"databaseEncryption": {"state": "DECRYPTED"}}, "is DECRYPTED"),
    (ENC, "aws:ec2/instance:Instance", {}, None),
    (PUB, storage.S3_BUCKET, {"acl": "private"}, None),
    (PUB, storage.S3_BUCKET, {"acl": "public-read"}, "ACL is 'public-read'"),
    (PUB, storage.S3_ACL, {"accessControlPolicy": {"grants": [{
        "permission": "READ",
        "grantee": {"uri": "http://acs.amazonaws.com/groups/global/AllUsers"}}]}},
     "grants READ to http://acs.amazonaws.com/groups/global/AllUsers"),
    (PUB, storage.S3_PUBLIC_ACCESS_BLOCK, dict.fromkeys(storage.PAB_FLAGS, True), None),
    (PUB, storage.S3_PUBLIC_ACCESS_BLOCK, {**dict.fromkeys(storage.PAB_FLAGS, True),
                                           "restrictPublicBuckets": False},
     "leaves restrictPublicBuckets unset or false"),
    (PUB, storage.S3_POLICY, policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*"}), None),
    (PUB, storage.S3_POLICY, policy({"Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"},
                                     "Action": "s3:GetObject"}), "statement 'Open' allows"),
    (PUB, storage.S3_POLICY, policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                     "Condition": {"StringEquals": {"aws:SourceVpce": "v"}}}),
     None),
    (PUB, storage.S3_POLICY, {"policy": "{not json"}, "not valid JSON"),
    (PUB, storage.AZ_STORAGE_ACCOUNT, GOOD_ACCOUNT, None),
    (PUB, storage.AZ_STORAGE_ACCOUNT, {"allowBlobPublicAccess": True},
     "allowBlobPublicAccess is True"),
    (PUB, storage.AZ_STORAGE_ACCOUNT, {}, "allowBlobPublicAccess is None (expected false)"),
    (PUB, storage.AZ_BLOB_CONTAINER, {"publicAccess": "None"}, None),
    (PUB, storage.AZ_BLOB_CONTAINER, {"publicAccess": "Blob"}, "publicAccess is 'Blob'"),
    (PUB, storage.AZ_REGISTRY, {"adminUserEnabled": False, "anonymousPullEnabled": False}, None),
    (PUB, storage.AZ_REGISTRY, {"anonymousPullEnabled": True}, "anonymous pull"),
    (PUB, storage.GCS_BUCKET, GOOD_GCS, None),
    (PUB, storage.GCS_BUCKET, {**GOOD_GCS, "publicAccessPrevention": "inherited"},
     "publicAccessPrevention is 'inherited'"),
    (PUB, storage.GCS_IAM_MEMBER, {"role": "roles/storage.objectViewer",
                                   "member": "serviceAccount:x@p.iam"}, None),
    (PUB, storage.GCS_IAM_MEMBER, {"role": "roles/storage.objectViewer", "member": "allUsers"},
     "grants roles/storage.objectViewer to allUsers"),
    (PUB, storage.GCS_IAM_BINDING, {"role": "r", "members": ["allAuthenticatedUsers"]},
     "allAuthenticatedUsers"),
    (VER, storage.S3_VERSIONING, {"versioningConfiguration": {"status": "Enabled"}}, None),
    (VER, storage.S3_VERSIONING, {"versioningConfiguration": {"status": "Suspended"}},
     "status is 'Suspended'"),
    (VER, storage.AZ_BLOB_SERVICE, {"isVersioningEnabled": True}, None),
    (VER, storage.AZ_BLOB_SERVICE, {}, "blob versioning is not enabled"),
    (VER, storage.GCS_BUCKET, GOOD_GCS, None),
    (VER, storage.GCS_BUCKET, {**GOOD_GCS, "versioning": {"enabled": False}}, "not enabled"),
]


@pytest.mark.parametrize(("rule", "resource_type", "props", "expected"), CASES,
                         ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}:{i}" for i, c in
                              enumerate(CASES)])
def test_storage_rule(rule: str, resource_type: str, props: dict[str, Any],
                      expected: str | None) -> None:
    found = check(rule, resource_type, props)
    if expected is None:
        assert found == []
    else:
        assert any(expected in message for message in found), found


def s3(name: str, *companions: str) -> list[ResourceView]:
    bucket = ResourceView(storage.S3_BUCKET, urn(storage.S3_BUCKET, name), {})
    return [bucket] + [ResourceView(kind, urn(kind, f"{name}-{i}"), {},
                                    frozenset({bucket.urn}))
                       for i, kind in enumerate(companions)]


@pytest.mark.parametrize(("rule", "companion"), [(ENC, storage.S3_SSE),
                                                 (PUB, storage.S3_PUBLIC_ACCESS_BLOCK),
                                                 (VER, storage.S3_VERSIONING)])
def test_every_s3_bucket_needs_its_companion(rule: str, companion: str) -> None:
    covered = s3("covered", companion)
    bare = s3("bare")
    found = check_stack(RULES[rule], covered + bare)
    assert [(urn_ or "").rsplit("::", 1)[-1] for _, urn_ in found] == ["bare"]
    assert "S3 bucket 'bare' has no" in found[0][0]


def test_inline_legacy_encryption_counts_as_a_companion() -> None:
    bucket = ResourceView(storage.S3_BUCKET, urn(storage.S3_BUCKET, "legacy"),
                          {"serverSideEncryptionConfiguration": {"rule": KMS_RULE}})
    assert check_stack(RULES[ENC], [bucket]) == []
