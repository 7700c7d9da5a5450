"""Access to the MLflow model registry: a client bound to one tracking URI, alias and version
lookups that answer ``None`` instead of raising when something does not exist, and downloads.

MLflow retries a dead server for minutes; :func:`client` checks ``/health`` first so a stopped
platform is a clear :class:`ServiceUnavailable` at once. The platform's MLflow needs a user:
:func:`client` and :func:`use` log the process in as the platform user when the URI is the
platform's (:func:`suite.platform.credentials.ensure_mlflow_login`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from suite.errors import ConfigError, ServiceUnavailable
from suite.platform import credentials

CHAMPION = "champion"
CHALLENGER = "challenger"
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def check_reachable(tracking_uri: str) -> None:
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        resp = httpx.get(tracking_uri.rstrip("/") + "/health", timeout=5)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"MLflow at {tracking_uri} is not reachable ({type(exc).__name__}); "
            "start the platform with `suite up`"
        ) from exc
    if resp.status_code != 200:
        raise ServiceUnavailable(
            f"MLflow at {tracking_uri} answered /health with HTTP {resp.status_code} (expected 200)"
        )


def client(tracking_uri: str) -> MlflowClient:
    check_reachable(tracking_uri)
    credentials.ensure_mlflow_login(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def exists(mc: MlflowClient, name: str) -> bool:
    """Whether MLflow has a registered model ``name`` (that this user may see)."""
    quoted = name.replace("'", "\\'")
    return any(m.name == name for m in mc.search_registered_models(f"name = '{quoted}'"))


def _missing(exc: MlflowException, mc: MlflowClient, name: str) -> bool:
    """``exc`` says the model (or its version, alias) does not exist. MLflow's basic-auth app
    answers a read of a model that does not exist with 403, not 404, to users who are not
    admins; since every user may read every model (default_permission READ), a 403 on a read
    of a model the registry's search does not list means there is no such model."""
    if exc.error_code in NOT_FOUND:
        return True
    return exc.error_code == "PERMISSION_DENIED" and not exists(mc, name)


def version_by_alias(mc: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return mc.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _missing(exc, mc, name):
            return None
        raise


def get_version(mc: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return mc.get_model_version(name, version)
    except MlflowException as exc:
        if not _missing(exc, mc, name):
            raise
        known = sorted(int(v.version) for v in mc.search_model_versions(f"name='{name}'"))
        raise ConfigError(
            f"model {name!r} has no version {version!r} "
            f"(versions: {', '.join(map(str, known)) or 'none'})"
        ) from exc


def use(tracking_uri: str) -> None:
    """Point MLflow's process-wide URIs at ``tracking_uri``.

    Needed for ``models:/`` downloads: MLflow 3.17 resolves the model URI with a default client
    and ignores the ``tracking_uri``/``registry_uri`` arguments there (it would open a local
    ``mlflow.db`` in the working directory instead).
    """
    import mlflow

    credentials.ensure_mlflow_login(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def download_onnx(tracking_uri: str, name: str, version: str, dst: Path | None = None) -> Path:
    """The ONNX file of ``name`` version ``version``, downloaded to ``dst`` (a temp dir if None)."""
    from mlflow.artifacts import download_artifacts

    use(tracking_uri)
    target = dst or Path(tempfile.mkdtemp(prefix=f"{name}-v{version}-"))
    local = Path(download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(target),
        tracking_uri=tracking_uri, registry_uri=tracking_uri,
    ))
    files = sorted(local.rglob("*.onnx"))
    if not files:
        raise ConfigError(f"model {name} v{version} has no .onnx file in its artifacts ({local})")
    return files[0]


def champion_onnx(tracking_uri: str, name: str, dst: Path | None = None
                  ) -> tuple[str, Path] | None:
    """``(version, onnx path)`` of the current champion, or None when there is none."""
    mc = client(tracking_uri)
    current = version_by_alias(mc, name, CHAMPION)
    if current is None:
        return None
    return str(current.version), download_onnx(tracking_uri, name, str(current.version), dst)
