"""Choose the program from ``suite:cloud``, validate its config, declare it, export outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from stacks.config import Cloud, ConfigReader, get_cloud
from stacks.tags import RequiredTags, load_tags


def _aws(reader: ConfigReader, tags: RequiredTags) -> dict[str, Any]:
    from stacks import aws
    from stacks.cloud_config import load_aws

    return aws.program(load_aws(reader), tags)


def _azure(reader: ConfigReader, tags: RequiredTags) -> dict[str, Any]:
    from stacks import azure
    from stacks.cloud_config import load_azure

    return azure.program(load_azure(reader), tags)


def _gcp(reader: ConfigReader, tags: RequiredTags) -> dict[str, Any]:
    from stacks import gcp
    from stacks.cloud_config import load_gcp

    return gcp.program(load_gcp(reader), tags)


def _kubernetes(reader: ConfigReader, tags: RequiredTags) -> dict[str, Any]:
    from stacks import kubernetes
    from stacks.k8s_config import load_kubernetes

    return kubernetes.program(load_kubernetes(reader), tags)


#: one entry per cloud; each imports only its own provider SDK
PROGRAMS: dict[Cloud, Callable[[ConfigReader, RequiredTags], dict[str, Any]]] = {
    Cloud.AWS: _aws,
    Cloud.AZURE: _azure,
    Cloud.GCP: _gcp,
    Cloud.KUBERNETES: _kubernetes,
}


def run(reader: ConfigReader) -> dict[str, Any]:
    cloud = get_cloud(reader)
    tags = load_tags(reader)
    outputs = PROGRAMS[cloud](reader, tags)
    pulumi.export("cloud", cloud.value)
    for name, value in outputs.items():
        pulumi.export(name, value)
    return outputs
