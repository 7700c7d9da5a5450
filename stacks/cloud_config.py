"""Per-cloud configuration (AWS, Azure, GCP) on top of the shared keys in ``stacks.config``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from stacks.config import (
    ConfigReader,
    NodePool,
    check_name,
    full_key,
    get_bool,
    get_choice,
    get_node_pools,
    get_str,
    get_str_list,
    require_str,
)
from suite.errors import ConfigError

_K8S_VERSION = re.compile(r"^1\.\d{2,}(\.\d+)?$")
_AZURE_POOL = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
REGISTRY_SKUS = ("Basic", "Standard", "Premium")
STORAGE_SKUS = ("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS")


@dataclass(frozen=True)
class Workload:
    """The Kubernetes service account the model server runs as (its cloud identity binds to it)."""

    namespace: str = "model-serving"
    service_account: str = "model-server"

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@dataclass(frozen=True)
class ClusterConfig:
    """What every managed-cluster program needs, whatever the cloud."""

    prefix: str
    kubernetes_version: str | None
    node_pools: tuple[NodePool, ...]
    api_allowed_cidrs: tuple[str, ...]
    workload: Workload


@dataclass(frozen=True)
class AwsConfig:
    cluster: ClusterConfig
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class AzureConfig:
    cluster: ClusterConfig
    location: str | None = None
    registry_sku: str = "Standard"
    storage_sku: str = "Standard_ZRS"


@dataclass(frozen=True)
class GcpConfig:
    cluster: ClusterConfig
    location: str
    master_cidr: str = "172.16.0.0/28"
    network: str | None = None
    subnetwork: str | None = None
    deletion_protection: bool = True


def load_workload(reader: ConfigReader) -> Workload:
    namespace = get_str(reader, "namespace", "model-serving") or ""
    check_name(namespace, full_key(reader, "namespace"))
    account = get_str(reader, "serviceAccount", "model-server") or ""
    return Workload(namespace, check_name(account, full_key(reader, "serviceAccount")))


def _cidrs(reader: ConfigReader, key: str) -> tuple[str, ...]:
    cidrs = get_str_list(reader, key)
    for i, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ConfigError(
                f"{full_key(reader, key)}[{i}] is {cidr!r} (expected a CIDR like 203.0.113.0/24)"
            ) from exc
    return cidrs


def load_cluster(reader: ConfigReader, default_machine_type: str) -> ClusterConfig:
    version = get_str(reader, "kubernetesVersion")
    if version is not None and not _K8S_VERSION.match(version):
        raise ConfigError(
            f"{full_key(reader, 'kubernetesVersion')} is {version!r} (expected e.g. '1.33')"
        )
    return ClusterConfig(
        prefix=check_name(get_str(reader, "prefix", "suite") or "", full_key(reader, "prefix")),
        kubernetes_version=version,
        node_pools=get_node_pools(reader, default_machine_type),
        api_allowed_cidrs=_cidrs(reader, "apiAllowedCidrs"),
        workload=load_workload(reader),
    )


def load_aws(reader: ConfigReader) -> AwsConfig:
    subnets = get_str_list(reader, "subnetIds")
    key = full_key(reader, "subnetIds")
    if len(subnets) < 2:
        raise ConfigError(
            f"{key} has {len(subnets)} subnet(s) (expected at least 2 private subnets in different "
            f"availability zones, e.g. ['subnet-0abc12345', 'subnet-0def67890'])"
        )
    for i, subnet in enumerate(subnets):
        if not _SUBNET_ID.match(subnet):
            raise ConfigError(
                f"{key}[{i}] is {subnet!r} (expected a subnet id like subnet-0abc1234)"
            )
    return AwsConfig(load_cluster(reader, "m6i.large"), subnet_ids=subnets)


def load_azure(reader: ConfigReader) -> AzureConfig:
    cluster = load_cluster(reader, "Standard_D4s_v5")
    for i, pool in enumerate(cluster.node_pools):
        if not _AZURE_POOL.match(pool.name):
            raise ConfigError(
                f"{full_key(reader, 'nodePools')}[{i}].name is {pool.name!r} (AKS expects 1-12 "
                f"lowercase letters and digits, starting with a letter)"
            )
    return AzureConfig(
        cluster,
        location=get_str(reader, "location"),
        registry_sku=get_choice(reader, "registrySku", REGISTRY_SKUS, "Standard"),
        storage_sku=get_choice(reader, "storageSku", STORAGE_SKUS, "Standard_ZRS"),
    )


def load_gcp(reader: ConfigReader) -> GcpConfig:
    master_cidr = get_str(reader, "masterCidr", "172.16.0.0/28") or ""
    try:
        if ipaddress.ip_network(master_cidr).prefixlen != 28:
            raise ValueError("not a /28")
    except ValueError as exc:
        raise ConfigError(
            f"{full_key(reader, 'masterCidr')} is {master_cidr!r} (expected a private /28 such "
            f"as 172.16.0.0/28)"
        ) from exc
    cluster = load_cluster(reader, "e2-standard-4")
    if len(cluster.prefix) > 17:
        raise ConfigError(
            f"{full_key(reader, 'prefix')} is {cluster.prefix!r} ({len(cluster.prefix)} "
            f"characters; GCP service account ids derived from it allow at most 17)"
        )
    return GcpConfig(
        cluster,
        location=require_str(reader, "location", "europe-west1"),
        master_cidr=master_cidr,
        network=get_str(reader, "network"),
        subnetwork=get_str(reader, "subnetwork"),
        deletion_protection=get_bool(reader, "deletionProtection", True),
    )
