"""Kubernetes program: one service's stable and canary tracks behind a Gateway API route.

The service is any one with a ``suite.yaml`` (``suite:manifest``) or registered on the platform
(``suite:service``); the model server is one such service. Everything about the service comes
from its manifest (``stacks.k8s_config``); one stack renders one service, so each service has
its own stack (e.g. ``dev-k8s`` for the model server, ``dev-k8s-httpbin``) and releases of
different services never touch each other's state.

Traffic is split by the HTTPRoute's backend weights, which come from ``suite:canaryWeight``: the
``kubernetes`` deploy target moves traffic by changing that value and running ``up``. A default
deny NetworkPolicy leaves only gateway-to-service ingress and DNS/HTTPS egress (plus the TCP
ports in ``suite:egressPorts``, e.g. a database). Secrets are referenced by Secret name and key;
the program never sees a value (see docs/pulumi.md for how the Secrets get into the cluster).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.components.pod import PORT_NAME
from stacks.components.secrets import EXTERNAL_SECRETS_API, external_secret_spec
from stacks.components.track import SERVICE_PORT, ServiceTrack
from stacks.k8s_config import KubernetesConfig
from stacks.tags import RequiredTags

GATEWAY_API = "gateway.networking.k8s.io/v1"


def _opts(cfg: KubernetesConfig) -> pulumi.ResourceOptions | None:
    """Use a provider that renders YAML instead of applying when ``suite:renderYamlDir`` is set."""
    if not cfg.render_yaml_dir:
        return None
    provider = k8s.Provider("render-yaml", render_yaml_to_directory=cfg.render_yaml_dir)
    return pulumi.ResourceOptions(provider=provider)


def backend_refs(cfg: KubernetesConfig) -> list[dict[str, Any]]:
    refs = [{"name": f"{cfg.app}-stable", "port": SERVICE_PORT,
             "weight": cfg.weights["stable"]}]
    if cfg.canary_image:
        refs.append({"name": f"{cfg.app}-canary", "port": SERVICE_PORT,
                     "weight": cfg.weights["canary"]})
    return refs


def http_route_spec(cfg: KubernetesConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                        "name": cfg.gateway_name, "namespace": cfg.gateway_namespace}],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": backend_refs(cfg),
        }],
    }
    if cfg.hostnames:
        spec["hostnames"] = list(cfg.hostnames)
    return spec


def _network_policies(
    cfg: KubernetesConfig, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> list[k8s.networking.v1.NetworkPolicy]:
    meta = {"namespace": cfg.namespace, "labels": labels}
    deny = k8s.networking.v1.NetworkPolicy(
        "default-deny",
        metadata={**meta, "name": "default-deny"},
        spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        opts=opts,
    )
    allow = k8s.networking.v1.NetworkPolicy(
        f"{cfg.app}-traffic",
        metadata={**meta, "name": f"{cfg.app}-traffic"},
        spec={
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": cfg.app}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": cfg.gateway_namespace}}}],
                "ports": [{"protocol": "TCP", "port": PORT_NAME}],
            }],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "kube-system"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": port}
                           for port in (443, *cfg.egress_ports)]},
            ],
        },
        opts=opts,
    )
    return [deny, allow]


def _external_secrets(
    cfg: KubernetesConfig, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> list[k8s.apiextensions.CustomResource]:
    """One ExternalSecret per Secret the pods reference, when ``suite:secretStore`` is set."""
    if not cfg.secret_store:
        return []
    return [k8s.apiextensions.CustomResource(
        f"{secret}-sync", api_version=EXTERNAL_SECRETS_API, kind="ExternalSecret",
        metadata={"name": secret, "namespace": cfg.namespace, "labels": labels},
        spec=external_secret_spec(cfg, secret), opts=opts) for secret in cfg.secret_names]


def program(cfg: KubernetesConfig, tags: RequiredTags) -> dict[str, Any]:
    """Declare the resources; returns the stack outputs."""
    base = _opts(cfg) or pulumi.ResourceOptions()
    labels = tags.merged({"app.kubernetes.io/part-of": "ultimate-suite",
                          "app.kubernetes.io/managed-by": "pulumi"})
    namespace = k8s.core.v1.Namespace(
        cfg.namespace,
        metadata={"name": cfg.namespace, "labels": {
            **labels,
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }},
        opts=base,
    )
    in_ns = pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=[namespace]))
    account = k8s.core.v1.ServiceAccount(
        cfg.workload.service_account,
        metadata={"name": cfg.workload.service_account, "namespace": cfg.namespace,
                  "labels": labels, "annotations": dict(cfg.service_account_annotations)},
        automount_service_account_token=False,
        opts=in_ns,
    )
    synced = _external_secrets(cfg, labels, in_ns)
    after_account = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
        depends_on=[namespace, account, *synced]))
    stable = ServiceTrack("stable", cfg, cfg.stable_image,
                          (cfg.min_replicas, cfg.max_replicas), labels, after_account)
    tracks = [stable]
    if cfg.canary_image:
        tracks.append(ServiceTrack(
            "canary", cfg, cfg.canary_image,
            (cfg.canary_min_replicas, cfg.canary_max_replicas), labels, after_account))
    k8s.apiextensions.CustomResource(
        cfg.app,
        api_version=GATEWAY_API,
        kind="HTTPRoute",
        metadata={"name": cfg.app, "namespace": cfg.namespace, "labels": labels},
        spec=http_route_spec(cfg),
        opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
            depends_on=[t.service for t in tracks])),
    )
    _network_policies(cfg, labels, in_ns)
    return {
        "service": cfg.app,
        "manifestDigest": cfg.spec.digest,
        "namespace": cfg.namespace,
        "services": [t.service_name for t in tracks],
        "route": cfg.app,
        "hostnames": list(cfg.hostnames),
        "secretNames": list(cfg.secret_names),
        "weights": cfg.weights,
        "stableImage": cfg.stable_image,
        "canaryImage": cfg.canary_image or "",
    }
