"""Required tags/labels, wherever each provider keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.crossguard.helpers import check

GOOD = {"owner": "ml-platform", "cost-center": "cc-1", "data-classification": "internal"}


@pytest.mark.parametrize(
    ("resource_type", "props", "expected"),
    [
        ("aws:s3/bucket:Bucket", {"tags": GOOD}, None),
        ("aws:s3/bucket:Bucket", {}, "tags is not set"),
        ("aws:iam/role:Role", {"tags": {"owner": "x"}}, "tags lacks cost-center, data-classif"),
        ("aws:sqs/queue:Queue", {"tags": {"owner": "x"}}, "lacks cost-center"),
        ("aws:iam/rolePolicy:RolePolicy", {"policy": "{}"}, None),
        ("azure-native:storage:StorageAccount", {"tags": {**GOOD, "owner": " "}}, "lacks owner"),
        ("azure-native:storage:StorageAccount", {"tags": {**GOOD, "data-classification": "top"}},
         "data-classification is 'top'"),
        ("gcp:storage/bucket:Bucket", {"labels": GOOD}, None),
        ("gcp:storage/bucket:Bucket", {"tags": GOOD}, "labels is not set"),
        ("gcp:container/cluster:Cluster", {"resourceLabels": GOOD}, None),
        ("gcp:container/nodePool:NodePool", {"nodeConfig": {"labels": GOOD}},
         "nodeConfig.resourceLabels is not set"),
        ("gcp:serviceaccount/account:Account", {"accountId": "x"}, None),
        ("kubernetes:apps/v1:Deployment", {"apiVersion": "apps/v1",
                                           "metadata": {"labels": GOOD}}, None),
        ("kubernetes:core/v1:Service", {"apiVersion": "v1", "metadata": {"name": "x"}},
         "metadata.labels is not set"),
        ("kubernetes:helm.sh/v3:Release", {"chart": "x"}, None),
        ("suite:kubernetes:ServiceTrack", {}, None),
    ],
)
def test_required_tags(resource_type: str, props: dict[str, Any], expected: str | None) -> None:
    found = check("required-tags", resource_type, props)
    if expected is None:
        assert found == []
    else:
        assert any(expected in message for message in found), found
