"""AWS program under Pulumi mocks: encrypted private versioned bucket, ECR, EKS, least privilege."""

from __future__ import annotations

import json

import pulumi
import pytest

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import aws  # noqa: E402
from stacks.cloud_config import load_aws  # noqa: E402
from tests.unit.stacks.helpers import count, reader, run, tags, untagged  # noqa: E402

# pulumi_aws defines its deprecated V2 classes on first use of a module; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning")
SUBNETS = ["subnet-0abc12345", "subnet-0def67890"]
POOLS = [
    {"name": "general", "machineType": "m6i.large", "minCount": 2, "maxCount": 5},
    {"name": "spot", "machineType": "m6i.xlarge", "minCount": 0, "maxCount": 8, "spot": True,
     "labels": {"workload": "batch"}},
]
CFG = load_aws(reader(subnetIds=SUBNETS, nodePools=POOLS, apiAllowedCidrs=["203.0.113.0/24"],
                      kubernetesVersion="1.33", prefix="suite-test"))


@pytest.fixture(scope="module")
def stack() -> mocks.Recorder:
    recorder, _ = run(lambda: aws.program(CFG, tags()))
    return recorder


def test_aws_program_declares_the_expected_resources(stack: mocks.Recorder) -> None:
    assert count(stack.resources) == {
        "aws:kms/key:Key": 2,
        "aws:kms/alias:Alias": 1,
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:ecr/repository:Repository": 1,
        "aws:iam/role:Role": 3,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 4,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:eks/cluster:Cluster": 1,
        "aws:eks/nodeGroup:NodeGroup": 2,
        "aws:eks/addon:Addon": 1,
        "aws:eks/podIdentityAssociation:PodIdentityAssociation": 1,
    }


def test_bucket_is_kms_encrypted_private_and_versioned(stack: mocks.Recorder) -> None:
    bucket = stack.one("aws:s3/bucket:Bucket")
    sse = stack.one("aws:s3/bucketServerSideEncryptionConfiguration:"
                    "BucketServerSideEncryptionConfiguration")
    default = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms", sse.urn
    assert default["kmsMasterKeyId"].endswith("suite-test-artifacts-key"), sse.urn
    assert bucket.urn in sse.depends_on, f"{sse.urn} is not attached to {bucket.urn}"
    block = stack.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block.inputs[f] is True for f in flags), block.urn
    assert bucket.urn in block.depends_on, block.urn
    versioning = stack.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled", versioning.urn
    ownership = stack.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced", ownership.urn
    policy = json.loads(stack.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert policy["Statement"][0]["Effect"] == "Deny"
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_registry_is_immutable_scanned_and_kms_encrypted(stack: mocks.Recorder) -> None:
    repo = stack.one("aws:ecr/repository:Repository")
    assert repo.inputs["name"] == "suite-test/model-server", repo.urn
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE", repo.urn
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}, repo.urn
    assert repo.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS", repo.urn


def test_cluster_encrypts_secrets_and_limits_its_public_endpoint(stack: mocks.Recorder) -> None:
    cluster = stack.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["version"] == "1.33", cluster.urn
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"], cluster.urn
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"].endswith(
        "suite-test-cluster-secrets-key"), cluster.urn
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["subnetIds"] == SUBNETS, cluster.urn
    assert vpc["endpointPrivateAccess"] is True, cluster.urn
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"], cluster.urn
    assert set(cluster.inputs["enabledClusterLogTypes"]) >= {"api", "audit"}, cluster.urn


def test_node_groups_follow_the_configured_pools(stack: mocks.Recorder) -> None:
    general = stack.one("aws:eks/nodeGroup:NodeGroup", "suite-test-general")
    assert general.inputs["instanceTypes"] == ["m6i.large"], general.urn
    assert general.inputs["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 5}
    assert general.inputs["capacityType"] == "ON_DEMAND", general.urn
    spot = stack.one("aws:eks/nodeGroup:NodeGroup", "suite-test-spot")
    assert spot.inputs["capacityType"] == "SPOT", spot.urn
    assert spot.inputs["scalingConfig"] == {"desiredSize": 1, "minSize": 0, "maxSize": 8}
    assert spot.inputs["labels"] == {"workload": "batch", "pool": "spot"}, spot.urn


def test_model_server_identity_reads_only_its_bucket(stack: mocks.Recorder) -> None:
    policy = json.loads(stack.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = sorted(a for s in policy["Statement"] for a in s["Action"])
    assert actions == ["kms:Decrypt", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"]
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert all("*" not in r.replace("/*", "") for r in resources), resources
    association = stack.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.inputs["namespace"] == "model-serving", association.urn
    assert association.inputs["serviceAccount"] == "model-server", association.urn
    role = stack.one("aws:iam/role:Role", "suite-test-model-server")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}, role.urn


def test_node_and_cluster_roles_get_only_the_eks_managed_policies(stack: mocks.Recorder) -> None:
    arns = sorted(a.inputs["policyArn"].rsplit("/", 1)[1]
                  for a in stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))
    assert arns == sorted(aws.CLUSTER_POLICIES + aws.NODE_POLICIES)


def test_every_taggable_aws_resource_carries_the_required_tags(stack: mocks.Recorder) -> None:
    assert untagged(stack.resources) == []


@pytest.mark.usefixtures("fresh_mocks")
@pulumi.runtime.test
def test_aws_outputs_name_bucket_registry_and_cluster() -> pulumi.Output[None]:
    outputs = aws.program(CFG, tags())

    def check(values: list[object]) -> None:
        bucket, registry, pools = values
        assert bucket == "suite-test-model-artifacts"
        assert str(registry).endswith("suite-test-model-server")
        assert pools == ["general", "spot"]

    return pulumi.Output.all(outputs["artifactBucket"], outputs["registryUrl"],
                             outputs["nodePools"]).apply(check)
