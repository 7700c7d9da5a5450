"""GCP program under Pulumi mocks: CMEK bucket, Artifact Registry, private GKE, least privilege."""

from __future__ import annotations

import pulumi
import pytest

from stacks import mocks

RECORDER = mocks.install()  # mocks before the program is imported

from stacks import gcp  # noqa: E402
from stacks.cloud_config import load_gcp  # noqa: E402
from tests.unit.stacks.helpers import count, reader, run, tags, untagged  # noqa: E402

# pulumi_gcp warns about its own deprecated functions on first use of a module
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning")
POOLS = [
    {"name": "general", "machineType": "e2-standard-4", "minCount": 1, "maxCount": 4},
    {"name": "spot", "machineType": "e2-standard-8", "minCount": 0, "maxCount": 6, "spot": True},
]
CFG = load_gcp(reader(nodePools=POOLS, location="europe-west1", prefix="suite-test",
                      apiAllowedCidrs=["203.0.113.0/24"]))


@pytest.fixture(scope="module")
def stack() -> mocks.Recorder:
    recorder, _ = run(lambda: gcp.program(CFG, tags()))
    return recorder


def test_gcp_program_declares_the_expected_resources(stack: mocks.Recorder) -> None:
    assert count(stack.resources) == {
        "gcp:kms/keyRing:KeyRing": 1,
        "gcp:kms/cryptoKey:CryptoKey": 2,
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": 3,
        "gcp:storage/bucket:Bucket": 1,
        "gcp:storage/bucketIAMMember:BucketIAMMember": 1,
        "gcp:artifactregistry/repository:Repository": 1,
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
        "gcp:serviceaccount/account:Account": 2,
        "gcp:serviceaccount/iAMMember:IAMMember": 1,
        "gcp:projects/iAMMember:IAMMember": 3,
        "gcp:container/cluster:Cluster": 1,
        "gcp:container/nodePool:NodePool": 2,
    }


def test_bucket_is_cmek_encrypted_private_and_versioned(stack: mocks.Recorder) -> None:
    bucket = stack.one("gcp:storage/bucket:Bucket")
    assert bucket.inputs["encryption"]["defaultKmsKeyName"] == "suite-test-artifacts-id"
    assert bucket.inputs["publicAccessPrevention"] == "enforced", bucket.urn
    assert bucket.inputs["uniformBucketLevelAccess"] is True, bucket.urn
    assert bucket.inputs["versioning"] == {"enabled": True}, bucket.urn
    grant = stack.one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
                      "suite-test-gcs-agent-artifacts")
    assert grant.urn in bucket.depends_on, f"{bucket.urn} must wait for {grant.urn}"
    assert grant.inputs["member"].endswith("@gs-project-accounts.iam.gserviceaccount.com")


def test_cluster_is_private_encrypted_and_uses_workload_identity(stack: mocks.Recorder) -> None:
    cluster = stack.one("gcp:container/cluster:Cluster")
    inputs = cluster.inputs
    assert inputs["removeDefaultNodePool"] is True, cluster.urn
    assert inputs["privateClusterConfig"]["enablePrivateNodes"] is True, cluster.urn
    assert inputs["databaseEncryption"] == {"state": "ENCRYPTED",
                                            "keyName": "suite-test-cluster-secrets-id"}
    assert inputs["workloadIdentityConfig"]["workloadPool"] == "mock-project.svc.id.goog"
    assert inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"][0]["cidrBlock"] == (
        "203.0.113.0/24")
    assert inputs["nodeConfig"]["serviceAccount"].startswith("suite-test-gke-nodes@")
    assert inputs["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}, cluster.urn


def test_node_pools_follow_config_on_a_dedicated_service_account(stack: mocks.Recorder) -> None:
    spot = stack.one("gcp:container/nodePool:NodePool", "suite-test-spot")
    node = spot.inputs["nodeConfig"]
    assert node["machineType"] == "e2-standard-8" and node["spot"] is True, spot.urn
    assert node["serviceAccount"].startswith("suite-test-gke-nodes@"), spot.urn
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}, spot.urn
    assert spot.inputs["autoscaling"] == {"totalMinNodeCount": 0, "totalMaxNodeCount": 6}
    roles = sorted(m.inputs["role"] for m in stack.of_type("gcp:projects/iAMMember:IAMMember"))
    assert roles == sorted(gcp.NODE_ROLES), "nodes get log/metric roles only"


def test_model_server_may_only_view_artifacts_as_one_k8s_account(stack: mocks.Recorder) -> None:
    viewer = stack.one("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert viewer.inputs["role"] == "roles/storage.objectViewer", viewer.urn
    assert viewer.inputs["member"] == (
        "serviceAccount:suite-test-model-server@mock-project.iam.gserviceaccount.com")
    binding = stack.one("gcp:serviceaccount/iAMMember:IAMMember")
    assert binding.inputs["member"] == (
        "serviceAccount:mock-project.svc.id.goog[model-serving/model-server]"), binding.urn


def test_every_labelable_gcp_resource_carries_the_required_labels(stack: mocks.Recorder) -> None:
    assert untagged(stack.resources) == []


@pytest.mark.usefixtures("fresh_mocks")
@pulumi.runtime.test
def test_gcp_outputs_name_the_registry_url() -> pulumi.Output[None]:
    outputs = gcp.program(CFG, tags())

    def check(url: str) -> None:
        assert url == "europe-west1-docker.pkg.dev/mock-project/suite-test-model-server"

    return outputs["registryUrl"].apply(check)
