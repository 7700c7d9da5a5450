"""Configuration of the Kubernetes program: one service's manifest plus the cluster's settings.

What the service *is* comes from its ``suite.yaml`` (``stacks.service_source``): port, readiness
path, replicas, resources, env, secrets, route host, model binding. What this *cluster* adds
comes from the stack: images and the canary weight (set by the ``kubernetes`` deploy target),
namespace, gateway, autoscaling ceiling, extra hostnames and env, identity annotations. Keys the
manifest now owns (``suite:containerPort``, ``suite:healthPath``, ``suite:resources``,
``suite:minReplicas``, ``suite:appName``) are refused with the manifest key to use instead, so
the two never disagree silently. Everything is validated before the first resource is declared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from policies.crossguard.kubernetes import image_pin_problem
from stacks.cloud_config import Workload
from stacks.config import (
    ConfigReader,
    check_name,
    full_key,
    get_choice,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
    require_str,
    to_int,
)
from stacks.k8s_quantities import cpu_quantity, memory_quantity, secret_name
from stacks.service_source import REPO_ROOT, load_service
from suite.errors import ConfigError
from suite.services.spec import ENV_RE, HOST_RE, RESERVED_ENV, ServiceSpec

#: stack keys whose value now comes from the service manifest
MOVED_TO_MANIFEST = {
    "appName": "service",
    "containerPort": "port",
    "healthPath": "readiness",
    "resources": "resources: {memory, cpus}",
    "minReplicas": "replicas",
}
#: environment the model adapter sets when a service declares ``model:`` (as the local target)
MODEL_ENV = ("MODEL_NAME", "MODEL_VERSION", "MODEL_PATH", "SERVE_MODEL_URI", "SERVE_MODEL_NAME",
             "SERVE_MODEL_VERSION")
if TYPE_CHECKING:
    from suite.settings import Settings

_LABEL = re.compile(r"^[a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?$")


@dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable filled from a Kubernetes Secret (by name and key; no value)."""

    env: str
    secret: str
    key: str
    path: str  # Vault KV path under secret/suite/ (where the Secret's value is synced from)


@dataclass(frozen=True)
class KubernetesConfig:
    spec: ServiceSpec
    workload: Workload
    stable_image: str
    canary_image: str | None = None
    canary_weight: int = 0
    max_replicas: int = 6
    canary_min_replicas: int = 1
    canary_max_replicas: int = 2
    target_cpu_utilization: int = 70
    run_as_user: int = 10001
    gateway_name: str = "suite-gateway"
    gateway_namespace: str = "gateway-system"
    extra_hostnames: tuple[str, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    egress_ports: tuple[int, ...] = ()
    #: External Secrets Operator store that reads the platform's Vault; None: Secrets exist
    secret_store: str | None = None
    secret_store_kind: str = "ClusterSecretStore"  # noqa: S105 - a resource kind, not a secret
    model_claim: str | None = None
    model_version: str | None = None
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    render_yaml_dir: str | None = None

    # -- from the manifest -----------------------------------------------------------------
    @property
    def app(self) -> str:
        return self.spec.service

    @property
    def container_port(self) -> int:
        return self.spec.port

    @property
    def health_path(self) -> str:
        return self.spec.readiness

    @property
    def min_replicas(self) -> int:
        return self.spec.replicas

    @property
    def resources(self) -> Resources:
        """Requests equal limits (Guaranteed QoS): what the manifest enforces locally."""
        values = {"cpu": cpu_quantity(self.spec.resources.cpus),
                  "memory": memory_quantity(self.spec.resources.memory_bytes)}
        return Resources(dict(values), dict(values))

    @property
    def hostnames(self) -> tuple[str, ...]:
        names = [self.spec.host, *self.extra_hostnames]
        return tuple(dict.fromkeys(n for n in names if n))

    @property
    def secret_env(self) -> tuple[SecretEnv, ...]:
        return tuple(SecretEnv(ref.env, secret_name(self.spec.service, ref.path), ref.key,
                               ref.path) for ref in self.spec.secrets)

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.secret for s in self.secret_env))

    # -- stack -------------------------------------------------------------------------------
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


def _refuse_moved_keys(reader: ConfigReader) -> None:
    for key, manifest_key in MOVED_TO_MANIFEST.items():
        if reader.get(key) not in (None, ""):
            raise ConfigError(
                f"{full_key(reader, key)} is set, but the service manifest owns it now "
                f"(expected `{manifest_key}` in the service's suite.yaml; "
                f"`pulumi config rm {full_key(reader, key)}`)")


def _replicas(reader: ConfigReader, low: int, max_key: str, default_max: int) -> int:
    high = get_int(reader, max_key, max(default_max, low), 1, 500)
    if high < low:
        raise ConfigError(f"{full_key(reader, max_key)} is {high} but the floor is {low} "
                          f"(expected max >= min)")
    return high


def _hostnames(reader: ConfigReader) -> tuple[str, ...]:
    names = get_str_list(reader, "hostnames")
    for i, name in enumerate(names):
        if not HOST_RE.match(name):
            raise ConfigError(f"{full_key(reader, 'hostnames')}[{i}] is {name!r} (expected a "
                              f"lower-case host name, e.g. models.example.com)")
    return names


def _extra_env(reader: ConfigReader, spec: ServiceSpec) -> dict[str, str]:
    env = get_str_map(reader, "env")
    taken = {k for k, _ in spec.env} | {s.env for s in spec.secrets}
    for key in env:
        where = f"{full_key(reader, 'env')}.{key}"
        if not ENV_RE.match(key):
            raise ConfigError(f"{where} is not an environment variable name "
                              f"([A-Za-z_][A-Za-z0-9_]*)")
        if key in RESERVED_ENV or key in MODEL_ENV:
            raise ConfigError(f"{where} is set by the platform; use another name")
        if key in taken:
            raise ConfigError(f"{where} is also set by the manifest of {spec.service!r} "
                              f"(expected each variable once: change one of them)")
    return env


def _egress_ports(reader: ConfigReader) -> tuple[int, ...]:
    ports = get_str_list(reader, "egressPorts") if isinstance(
        reader.get("egressPorts"), str) else reader.get("egressPorts") or []
    if not isinstance(ports, list | tuple):
        raise ConfigError(f"{full_key(reader, 'egressPorts')} is {ports!r} (expected a list "
                          f"of TCP ports, e.g. [5432])")
    return tuple(sorted({to_int(p, f"{full_key(reader, 'egressPorts')}[{i}]", 1, 65535)
                         for i, p in enumerate(ports)} - {443}))


def _check_secret_names(reader: ConfigReader, spec: ServiceSpec) -> None:
    seen: dict[str, str] = {}
    for ref in spec.secrets:
        name = secret_name(spec.service, ref.path)
        if seen.setdefault(name, ref.path) != ref.path:
            raise ConfigError(
                f"{full_key(reader, 'manifest')}: secrets {seen[name]!r} and {ref.path!r} both "
                f"map to the Kubernetes Secret {name!r} (expected Vault paths that differ in "
                f"more than '_' / '.' vs '-')")


def _model(reader: ConfigReader, spec: ServiceSpec) -> tuple[str | None, str | None]:
    if spec.model is None:
        for key in ("modelClaim", "modelVersion"):
            if reader.get(key) not in (None, ""):
                raise ConfigError(f"{full_key(reader, key)} is set but {spec.service!r} "
                                  f"declares no `model:` (expected it unset)")
        return None, None
    claim = check_name(get_str(reader, "modelClaim", f"{spec.service}-model") or "",
                       full_key(reader, "modelClaim"))
    version = get_str(reader, "modelVersion")
    if version is not None and not _LABEL.match(version):
        raise ConfigError(f"{full_key(reader, 'modelVersion')} is {version!r} (expected a "
                          f"registered model version, e.g. 3)")
    return claim, version


def load_kubernetes(reader: ConfigReader, root: Path = REPO_ROOT,
                    settings: Settings | None = None) -> KubernetesConfig:
    _refuse_moved_keys(reader)
    spec = load_service(reader, root, settings)
    _check_secret_names(reader, spec)
    stable = _image(reader, "stableImage", require_str(
        reader, "stableImage", f"registry.example.com/{spec.service}@sha256:<digest>"))
    canary_raw = get_str(reader, "canaryImage")
    canary = _image(reader, "canaryImage", canary_raw) if canary_raw else None
    weight = get_int(reader, "canaryWeight", 0, 0, 100)
    if weight and canary is None:
        raise ConfigError(
            f"{full_key(reader, 'canaryWeight')} is {weight} but {full_key(reader, 'canaryImage')} "
            f"is not set (expected canaryWeight 0 without a canary)"
        )
    canary_low = get_int(reader, "canaryMinReplicas", 1, 1, 100)
    namespace = check_name(get_str(reader, "namespace", spec.service) or "",
                           full_key(reader, "namespace"))
    account = check_name(get_str(reader, "serviceAccount", spec.service) or "",
                         full_key(reader, "serviceAccount"))
    claim, version = _model(reader, spec)
    store = get_str(reader, "secretStore")
    if store is not None:
        check_name(store, full_key(reader, "secretStore"))
    return KubernetesConfig(
        spec=spec,
        workload=Workload(namespace, account),
        stable_image=stable,
        canary_image=canary,
        canary_weight=weight,
        max_replicas=_replicas(reader, spec.replicas, "maxReplicas", 3 * spec.replicas),
        canary_min_replicas=canary_low,
        canary_max_replicas=_replicas(reader, canary_low, "canaryMaxReplicas", spec.replicas),
        target_cpu_utilization=get_int(reader, "targetCpuUtilization", 70, 10, 100),
        run_as_user=get_int(reader, "runAsUser", 10001, 10001, 2**31 - 1),
        gateway_name=get_str(reader, "gatewayName", "suite-gateway") or "suite-gateway",
        gateway_namespace=check_name(get_str(reader, "gatewayNamespace", "gateway-system") or "",
                                     full_key(reader, "gatewayNamespace")),
        extra_hostnames=_hostnames(reader),
        extra_env=_extra_env(reader, spec),
        egress_ports=_egress_ports(reader),
        secret_store=store,
        secret_store_kind=get_choice(reader, "secretStoreKind",
                                     ("ClusterSecretStore", "SecretStore"), "ClusterSecretStore"),
        model_claim=claim,
        model_version=version,
        service_account_annotations=get_str_map(reader, "serviceAccountAnnotations"),
        pod_labels=get_str_map(reader, "podLabels"),
        render_yaml_dir=get_str(reader, "renderYamlDir"),
    )
