"""Hardened pod specs for one service's track, as plain manifest dicts (camelCase).

Satisfies the Kubernetes "restricted" Pod Security Standard and the CrossGuard pack: non-root
numeric user, read-only root filesystem (an emptyDir for /tmp), no privilege escalation, every
capability dropped, RuntimeDefault seccomp, requests and limits, probes, no API token.

What varies by service comes from its manifest: the port, the readiness path, env, secrets (as
``secretKeyRef`` by Secret name and key: the value never passes through the program or its
state) and, only for a service that declares ``model:``, the model as a read-only volume.
"""

from __future__ import annotations

from typing import Any

from stacks.k8s_config import KubernetesConfig

PORT_NAME = "http"
TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
MODEL_VOLUME = "model"


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


def readiness_probe(cfg: KubernetesConfig) -> dict[str, Any]:
    """The manifest's readiness path: also what the gateway's endpoints follow."""
    return {"httpGet": {"path": cfg.health_path, "port": PORT_NAME}, "periodSeconds": 5,
            "timeoutSeconds": 2, "failureThreshold": 3}


def liveness_probe() -> dict[str, Any]:
    """A TCP check: a draining server answers not-ready, and must not be restarted for it."""
    return {"tcpSocket": {"port": PORT_NAME}, "initialDelaySeconds": 10, "periodSeconds": 10,
            "timeoutSeconds": 2, "failureThreshold": 6}


def model_env(cfg: KubernetesConfig) -> dict[str, str]:
    """The model adapter's variables, the same names the local target sets (tasks/deploy.py
    ``bind_model``): ``SERVE_*`` for the model server, ``MODEL_*`` for any other service."""
    model = cfg.spec.model
    if model is None:
        return {}
    path = f"{model.mount}/model.onnx"
    found = {"MODEL_NAME": model.name, "MODEL_PATH": path, "SERVE_MODEL_URI": path,
             "SERVE_MODEL_NAME": model.name}
    if cfg.model_version:
        found |= {"MODEL_VERSION": cfg.model_version, "SERVE_MODEL_VERSION": cfg.model_version}
    return found


def env(cfg: KubernetesConfig, track: str) -> list[dict[str, Any]]:
    """Platform variables, then the manifest's (the model adapter's win, as on the local
    target), the stack's, and the secrets' as references."""
    values = {"PORT": str(cfg.container_port), "SUITE_SERVICE": cfg.app, "SUITE_TRACK": track}
    values |= dict(cfg.spec.env)
    values |= model_env(cfg)
    values |= dict(sorted(cfg.extra_env.items()))
    found: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    found += [{"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
              for s in cfg.secret_env]
    return found


def volumes(cfg: KubernetesConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container mounts): /tmp always; the model only when ``model:`` is set."""
    pod = [dict(TMP_VOLUME)]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - emptyDir
    if cfg.spec.model is not None and cfg.model_claim:
        pod.append({"name": MODEL_VOLUME, "persistentVolumeClaim": {
            "claimName": cfg.model_claim, "readOnly": True}})
        mounts.append({"name": MODEL_VOLUME, "mountPath": cfg.spec.model.mount,
                       "readOnly": True})
    return pod, mounts


def container(cfg: KubernetesConfig, track: str, image: str) -> dict[str, Any]:
    _, mounts = volumes(cfg)
    return {
        "name": cfg.app,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": cfg.container_port, "protocol": "TCP"}],
        "env": env(cfg, track),
        "resources": cfg.resources.as_dict(),
        "securityContext": container_security_context(cfg.run_as_user),
        "readinessProbe": readiness_probe(cfg),
        "livenessProbe": liveness_probe(),
        "volumeMounts": mounts,
    }


def pod_template(
    cfg: KubernetesConfig, track: str, image: str, labels: dict[str, str]
) -> dict[str, Any]:
    pod_volumes, _ = volumes(cfg)
    return {
        "metadata": {"labels": {**labels, **cfg.pod_labels}},
        "spec": {
            "serviceAccountName": cfg.workload.service_account,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(cfg.run_as_user),
            "containers": [container(cfg, track, image)],
            "volumes": pod_volumes,
            "terminationGracePeriodSeconds": 30,
        },
    }
