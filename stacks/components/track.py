"""One track (stable or canary) of a service: Deployment, Service, HPA and PDB.

Replicas are left to the HorizontalPodAutoscaler: the Deployment does not set ``spec.replicas``,
so ``up`` and the nightly drift check never fight the autoscaler.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.components.pod import PORT_NAME, pod_template
from stacks.k8s_config import KubernetesConfig

SERVICE_PORT = 80
COMPONENT_TYPE = "suite:kubernetes:ServiceTrack"
#: the type this component had when the program rendered only the model server; aliased so an
#: existing stack's tracks are adopted in place instead of deleted and re-created
OLD_COMPONENT_TYPE = "suite:kubernetes:ModelServerTrack"


def track_labels(cfg: KubernetesConfig, track: str) -> dict[str, str]:
    """Selector labels of a track (immutable once the Deployment exists)."""
    return {"app.kubernetes.io/name": cfg.app, "track": track}


class ServiceTrack(pulumi.ComponentResource):
    """Deployment + Service + HorizontalPodAutoscaler + PodDisruptionBudget of one track."""

    service_name: str

    def __init__(
        self,
        track: str,
        cfg: KubernetesConfig,
        image: str,
        replicas: tuple[int, int],
        labels: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        name = f"{cfg.app}-{track}"
        aliased = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            aliases=[pulumi.Alias(type_=OLD_COMPONENT_TYPE)]))
        super().__init__(COMPONENT_TYPE, name, None, aliased)
        # children do not inherit the component's depends_on (e.g. the namespace): pass it on
        waits_for = list(_as_list((opts or pulumi.ResourceOptions()).depends_on))
        child = pulumi.ResourceOptions(parent=self, depends_on=waits_for)
        selector = track_labels(cfg, track)
        all_labels = {
            **labels,
            **selector,
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/version": _version(image),
        }
        self.service_name = name
        self.deployment = k8s.apps.v1.Deployment(
            name, metadata=self._meta(cfg, name, all_labels), spec=self._spec(
                cfg, track, image, selector, all_labels), opts=child)
        self.service = k8s.core.v1.Service(
            name, metadata=self._meta(cfg, name, all_labels), spec=service_spec(selector),
            opts=child)
        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            name, metadata=self._meta(cfg, name, all_labels),
            spec=autoscaler_spec(name, replicas, cfg.target_cpu_utilization),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*waits_for, self.deployment]))
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            name, metadata=self._meta(cfg, name, all_labels),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=child)
        self.register_outputs({"service": name, "deployment": name})

    @staticmethod
    def _meta(cfg: KubernetesConfig, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"name": name, "namespace": cfg.namespace, "labels": labels}

    @staticmethod
    def _spec(
        cfg: KubernetesConfig,
        track: str,
        image: str,
        selector: dict[str, str],
        labels: dict[str, str],
    ) -> dict[str, Any]:
        return {
            "selector": {"matchLabels": selector},
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod_template(cfg, track, image, labels),
        }


def service_spec(selector: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME,
                   "protocol": "TCP"}],
    }


def autoscaler_spec(deployment: str, replicas: tuple[int, int], cpu: int) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": replicas[0],
        "maxReplicas": replicas[1],
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}],
    }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _version(image: str) -> str:
    """A label-safe version: the tag, or the first 12 hex digits of the digest."""
    if "@sha256:" in image:
        return image.rsplit("@sha256:", 1)[1][:12]
    tag = image.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in tag)[:63]
    return cleaned.strip("-_.") or "unknown"
