"""Deploy stage: put a release on a target, shift traffic, promote or roll back.

Plain functions do the work; the ``@task`` wrappers add Prefect's rollback hooks, so a failure
later in the release transaction undoes what the deploy tasks did (the canary is removed and all
traffic returns to stable). Model files come from the MLflow registry, are checked against the
attestation the train stage signed (:mod:`tasks.evidence_model`) and are mounted read-only.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

import hvac
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.transactions import Transaction, get_transaction

from suite.errors import ConfigError
from suite.services.spec import ModelBinding, ServiceSpec
from suite.settings import Settings
from tasks.evidence_model import admit_model
from tasks.targets import get_target
from tasks.targets.base import Deployment, Mount, Role, Workload


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    directory: str  # host dir with model.onnx


def new_release_id(git_sha: str) -> str:
    return f"{git_sha[:8]}-{uuid.uuid4().hex[:6]}"


def resolve_model_version(settings: Settings, name: str, version: str | None,
                          alias: str = "challenger") -> str:
    """``version`` as given, else the manifest's ``alias`` (``challenger``: else the
    ``champion``)."""
    from models.registry.store import client, get_version, version_by_alias

    mc = client(settings.mlflow_uri)
    if version:
        get_version(mc, name, version)
        return version
    for wanted in dict.fromkeys((alias, "champion")):
        found = version_by_alias(mc, name, wanted)
        if found is not None:
            return str(found.version)
    raise ConfigError(f"model {name!r} has neither a 'challenger' nor a 'champion' version; "
                      f"train one first (`prefect deployment run train/train`)")


def fetch_model(settings: Settings, name: str, version: str, *, service: str = "",
                release: str = "", vault: hvac.Client | None = None) -> ModelRef:
    """The ONNX file of ``name`` ``version`` in ``releases/models/NAME/VERSION``, downloaded
    once per version, and checked against the version's signed attestation every time, before
    anything mounts it (:func:`tasks.evidence_model.admit_model`): a refused file fails the
    release with an ``admission.refused`` record, and a refused download is never kept."""
    from models.registry.store import download_onnx

    folder = settings.dir("releases", "models", name, version)
    target = folder / "model.onnx"
    if target.exists():  # the exact file about to be mounted
        admit_model(settings, name, version, target, vault=vault, service=service,
                    release=release)
    else:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            found = download_onnx(settings.mlflow_uri, name, version, tmp / "download")
            shutil.copyfile(found, tmp / "model.onnx")
            shutil.rmtree(tmp / "download", ignore_errors=True)
            admit_model(settings, name, version, tmp / "model.onnx", vault=vault,
                        service=service, release=release)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    # the container runs as an unprivileged user: the path must be readable by anyone
    for path in [*reversed(folder.parents), folder]:
        if path.is_dir() and str(path).startswith(str(settings.home)):
            os.chmod(path, os.stat(path).st_mode | 0o005)
    os.chmod(target, 0o644)
    return ModelRef(name, version, str(folder))


def workload_for(
    spec: ServiceSpec, *, release: str, git_sha: str, image: str, replicas: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Workload:
    """The generic workload of a service's manifest; ``env`` overrides it for this release
    (fault injection in demos and tests)."""
    merged = dict(spec.env)
    merged.update(env or {})
    return Workload(
        service=spec.service, release=release, version=git_sha[:12], image=image,
        port=spec.port, readiness=spec.readiness, replicas=replicas or spec.replicas,
        env=tuple(merged.items()), secrets=tuple((s.env, str(s)) for s in spec.secrets),
        memory_bytes=spec.resources.memory_bytes, cpus=spec.resources.cpus,
        pids=spec.resources.pids, host=spec.host,
    )


def bind_model(wl: Workload, binding: ModelBinding, model: ModelRef) -> Workload:
    """The model adapter: the ONNX file's folder mounted read-only where the manifest says,
    and its name, version and path in the environment (``SERVE_*`` for the model server,
    ``MODEL_*`` for any other service)."""
    path = f"{binding.mount}/model.onnx"
    extra = {"MODEL_NAME": model.name, "MODEL_VERSION": model.version, "MODEL_PATH": path,
             "SERVE_MODEL_URI": path, "SERVE_MODEL_NAME": model.name,
             "SERVE_MODEL_VERSION": model.version}
    env = dict(wl.env)
    env.update(extra)
    return replace(wl, env=tuple(env.items()),
                   mounts=(*wl.mounts, Mount(model.directory, binding.mount, True)),
                   model=f"{model.name} v{model.version}")


def _stash(target: str, service: str, settings: Settings) -> None:
    txn = get_transaction()
    if txn is not None:
        txn.set("target", target)
        txn.set("service", service)
        txn.set("settings", settings)


def _undo(txn: Transaction) -> None:
    """A later stage of the release failed: all traffic back to stable, canary removed."""
    get_target(txn.get("target"), txn.get("settings")).rollback(txn.get("service"))


@task(name="deploy-stable", cache_policy=NO_CACHE)
def deploy_stable_task(target: str, wl: Workload, settings: Settings) -> Deployment:
    """Rolling update of the stable replicas (the strategy ``rolling``; also a first release)."""
    return get_target(target, settings).reconcile(wl, Role.STABLE)


@task(name="deploy-canary", cache_policy=NO_CACHE)
def deploy_canary_task(target: str, wl: Workload, settings: Settings) -> Deployment:
    _stash(target, wl.service, settings)
    return get_target(target, settings).reconcile(wl, Role.CANARY)


deploy_canary_task.on_rollback(_undo)


@task(name="deploy-preview", cache_policy=NO_CACHE)
def deploy_preview_task(target: str, wl: Workload, settings: Settings) -> Deployment:
    _stash(target, wl.service, settings)
    return get_target(target, settings).reconcile(wl, Role.PREVIEW)


deploy_preview_task.on_rollback(_undo)


@task(name="set-weight", cache_policy=NO_CACHE)
def set_weight_task(target: str, service: str, percent: int, settings: Settings) -> Deployment:
    return get_target(target, settings).set_weights(service, percent)


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(target: str, service: str, settings: Settings) -> Deployment:
    return get_target(target, settings).promote(service)


@task(name="rollback", cache_policy=NO_CACHE)
def rollback_task(target: str, service: str, settings: Settings) -> Deployment:
    return get_target(target, settings).rollback(service)


@task(name="finalize", cache_policy=NO_CACHE)
def finalize_task(target: str, service: str, settings: Settings) -> Deployment:
    return get_target(target, settings).finalize(service)
