"""Hardened pod specs for the model server, as plain manifest dicts (camelCase).

Satisfies the Kubernetes "restricted" Pod Security Standard and the CrossGuard pack: non-root
numeric user, read-only root filesystem (an emptyDir for /tmp), no privilege escalation, every
capability dropped, RuntimeDefault seccomp, requests and limits, probes, no API token.
"""

from __future__ import annotations

from typing import Any

from stacks.k8s_config import KubernetesConfig

CONTAINER = "model-server"
PORT_NAME = "http"


def container_security_context(uid: int) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(cfg: KubernetesConfig, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": cfg.health_path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def container(cfg: KubernetesConfig, track: str, image: str) -> dict[str, Any]:
    env = [{"name": "SUITE_TRACK", "value": track}]
    env += [{"name": key, "value": value} for key, value in sorted(cfg.env.items())]
    return {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": cfg.container_port, "protocol": "TCP"}],
        "env": env,
        "resources": cfg.resources.as_dict(),
        "securityContext": container_security_context(cfg.run_as_user),
        "readinessProbe": _probe(cfg, period=5, failures=3),
        "livenessProbe": {**_probe(cfg, period=10, failures=6), "initialDelaySeconds": 10},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }


def pod_template(
    cfg: KubernetesConfig, track: str, image: str, labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {**labels, **cfg.pod_labels}},
        "spec": {
            "serviceAccountName": cfg.workload.service_account,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(cfg.run_as_user),
            "containers": [container(cfg, track, image)],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
            "terminationGracePeriodSeconds": 30,
        },
    }
