"""Configuration of the Kubernetes program: images, traffic weights, scaling, resources, gateway.

The ``kubernetes`` deploy target shifts traffic by setting ``suite:canaryWeight`` (and
``suite:canaryImage``) on the stack and running ``up``; everything here is validated before the
first resource is declared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.crossguard.kubernetes import image_pin_problem
from stacks.cloud_config import Workload, load_workload
from stacks.config import (
    ConfigReader,
    check_name,
    full_key,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
    require_str,
)
from suite.errors import ConfigError

_CPU = re.compile(r"^(\d+(\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_UNITS = {
    None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
DEFAULT_RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


@dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class KubernetesConfig:
    workload: Workload
    stable_image: str
    canary_image: str | None = None
    canary_weight: int = 0
    app: str = "model-server"
    min_replicas: int = 2
    max_replicas: int = 6
    canary_min_replicas: int = 1
    canary_max_replicas: int = 2
    target_cpu_utilization: int = 70
    resources: Resources = field(
        default_factory=lambda: Resources(
            DEFAULT_RESOURCES["requests"], DEFAULT_RESOURCES["limits"]
        )
    )
    container_port: int = 8080
    health_path: str = "/health"
    run_as_user: int = 10001
    gateway_name: str = "suite-gateway"
    gateway_namespace: str = "gateway-system"
    hostnames: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    render_yaml_dir: str | None = None

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    @property
    def weights(self) -> dict[str, int]:
        return {"stable": 100 - self.canary_weight, "canary": self.canary_weight}


def _image(reader: ConfigReader, key: str, value: str) -> str:
    problem = image_pin_problem(value)
    if problem:
        raise ConfigError(
            f"{full_key(reader, key)} {value!r} {problem} (expected repo@sha256:<digest> or "
            f"repo:<pinned tag>)"
        )
    return value


def _millicores(value: str) -> float:
    match = _CPU.match(value)
    assert match
    return float(match.group(1)) * (1 if match.group(3) else 1000)


def _bytes(value: str) -> float:
    match = _MEMORY.match(value)
    assert match
    return float(match.group(1)) * _MEMORY_UNITS[match.group(3)]


def _quantity(where: str, resource: str, value: Any) -> str:
    text = str(value)
    pattern = _CPU if resource == "cpu" else _MEMORY
    if not pattern.match(text):
        example = "'500m' or '2'" if resource == "cpu" else "'512Mi' or '2Gi'"
        raise ConfigError(f"{where} is {value!r} (expected a quantity like {example})")
    return text


def load_resources(reader: ConfigReader) -> Resources:
    key = full_key(reader, "resources")
    raw = reader.get("resources") or DEFAULT_RESOURCES
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{key} is {raw!r} (expected {{requests: {{cpu, memory}}, limits: {{cpu, memory}}}})"
        )
    parsed: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        section = raw.get(kind) or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{key}.{kind} is {section!r} (expected {{cpu, memory}})")
        parsed[kind] = {}
        for resource in ("cpu", "memory"):
            if not section.get(resource):
                raise ConfigError(f"{key}.{kind}.{resource} is not set (requests and limits "
                                  f"need both cpu and memory)")
            parsed[kind][resource] = _quantity(f"{key}.{kind}.{resource}", resource,
                                               section[resource])
    req, lim = parsed["requests"], parsed["limits"]
    if _millicores(req["cpu"]) > _millicores(lim["cpu"]):
        raise ConfigError(f"{key}.requests.cpu {req['cpu']} exceeds limits.cpu {lim['cpu']}")
    if _bytes(req["memory"]) > _bytes(lim["memory"]):
        raise ConfigError(
            f"{key}.requests.memory {req['memory']} exceeds limits.memory {lim['memory']}"
        )
    return Resources(req, lim)


def _replicas(
    reader: ConfigReader, min_key: str, max_key: str, defaults: tuple[int, int]
) -> tuple[int, int]:
    low = get_int(reader, min_key, defaults[0], 1, 100)
    high = get_int(reader, max_key, max(defaults[1], low), 1, 500)
    if low > high:
        raise ConfigError(
            f"{full_key(reader, min_key)} is {low} but {full_key(reader, max_key)} is {high} "
            f"(expected min <= max)"
        )
    return low, high


def load_kubernetes(reader: ConfigReader) -> KubernetesConfig:
    stable = _image(reader, "stableImage", require_str(
        reader, "stableImage", "registry.example.com/model-server@sha256:<digest>"))
    canary_raw = get_str(reader, "canaryImage")
    canary = _image(reader, "canaryImage", canary_raw) if canary_raw else None
    weight = get_int(reader, "canaryWeight", 0, 0, 100)
    if weight and canary is None:
        raise ConfigError(
            f"{full_key(reader, 'canaryWeight')} is {weight} but {full_key(reader, 'canaryImage')} "
            f"is not set (expected canaryWeight 0 without a canary)"
        )
    health = get_str(reader, "healthPath", "/health") or "/health"
    if not health.startswith("/"):
        raise ConfigError(
            f"{full_key(reader, 'healthPath')} is {health!r} (expected a path like /health)"
        )
    low, high = _replicas(reader, "minReplicas", "maxReplicas", (2, 6))
    canary_low, canary_high = _replicas(
        reader, "canaryMinReplicas", "canaryMaxReplicas", (1, 2)
    )
    return KubernetesConfig(
        workload=load_workload(reader),
        stable_image=stable,
        canary_image=canary,
        canary_weight=weight,
        app=check_name(get_str(reader, "appName", "model-server") or "",
                       full_key(reader, "appName")),
        min_replicas=low,
        max_replicas=high,
        canary_min_replicas=canary_low,
        canary_max_replicas=canary_high,
        target_cpu_utilization=get_int(reader, "targetCpuUtilization", 70, 10, 100),
        resources=load_resources(reader),
        container_port=get_int(reader, "containerPort", 8080, 1024, 65535),
        health_path=health,
        run_as_user=get_int(reader, "runAsUser", 10001, 10001, 2**31 - 1),
        gateway_name=get_str(reader, "gatewayName", "suite-gateway") or "suite-gateway",
        gateway_namespace=check_name(get_str(reader, "gatewayNamespace", "gateway-system") or "",
                                     full_key(reader, "gatewayNamespace")),
        hostnames=get_str_list(reader, "hostnames"),
        env=get_str_map(reader, "env"),
        service_account_annotations=get_str_map(reader, "serviceAccountAnnotations"),
        pod_labels=get_str_map(reader, "podLabels"),
        render_yaml_dir=get_str(reader, "renderYamlDir"),
    )
