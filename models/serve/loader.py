"""Find the ONNX file to serve: a path (no MLflow import at all) or an MLflow registry URI.

``models:/NAME@ALIAS`` is resolved to a version number first and that exact version is downloaded,
so the version in the metrics labels is the one being served even if the alias moves meanwhile.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.serve.errors import LoadError

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelSource:
    uri: str
    path: Path
    name: str | None
    version: str


def _single_onnx(directory: Path, uri: str) -> Path:
    files = sorted(directory.rglob("*.onnx"))
    if len(files) != 1:
        raise LoadError(f"{uri}: expected exactly one .onnx file under {directory}, "
                        f"found {len(files)}")
    return files[0]


def _file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256-" + digest.hexdigest()[:12]


def from_path(uri: str) -> ModelSource:
    path = Path(uri.removeprefix("file://")).expanduser()
    if path.is_dir():
        path = _single_onnx(path, uri)
    elif not path.is_file():
        raise LoadError(f"model {uri!r} is neither an existing .onnx file or directory nor a "
                        "models:/NAME@ALIAS or models:/NAME/VERSION URI")
    return ModelSource(uri=uri, path=path, name=None, version=_file_version(path))


def from_registry(uri: str, tracking_uri: str | None, dst: Path | None = None) -> ModelSource:
    match = _REGISTRY_URI.match(uri)
    if not match:
        raise LoadError(f"model URI {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    if not tracking_uri:
        raise LoadError(f"{uri} needs an MLflow tracking URI (--tracking-uri or "
                        "MLFLOW_TRACKING_URI)")
    try:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise LoadError(f"{uri} needs the mlflow package (pip install mlflow), or serve a "
                        ".onnx file path instead") from exc
    name = match["name"]
    # MLflow 3.17 resolves models:/ downloads with its default client, whatever is passed in.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = match["version"] or str(client.get_model_version_by_alias(
            name, match["alias"]).version)
        local = Path(download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(dst or tempfile.mkdtemp(prefix="model-server-")),
            tracking_uri=tracking_uri, registry_uri=tracking_uri,
        ))
    except MlflowException as exc:
        hint = (" (MLflow needs a user: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD)" if "401" in exc.message else "")
        raise LoadError(f"{uri} cannot be loaded from MLflow at {tracking_uri}: "
                        f"{exc.message}{hint}") from exc
    return ModelSource(uri=uri, path=_single_onnx(local, uri), name=name, version=version)


def resolve(uri: str, tracking_uri: str | None = None) -> ModelSource:
    if uri.startswith("models:/"):
        return from_registry(uri, tracking_uri)
    return from_path(uri)
