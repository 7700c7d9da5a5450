"""Log a validated ONNX model to MLflow and register it as a new version with alias ``challenger``.

The MLflow model is the ONNX flavour only (what the server and the container need): signature,
input example, explicit pip requirements pinned to what is installed (inference would cost ~4 s)
and the CPU execution provider. Version tags carry the provenance: git sha, data digest, metrics
and parity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from models.onnx_contract import INPUT_NAME, LABEL_OUTPUT, N_CLASSES, N_FEATURES, PROBA_OUTPUT
from models.registry.store import CHALLENGER, client, use

ARTIFACT_NAME = "model"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str
    alias: str = CHALLENGER
    tags: Mapping[str, str] = field(default_factory=dict)


def pip_requirements() -> list[str]:
    """What loading the ONNX flavour needs, pinned to the versions that validated the model."""
    return [f"{dist}=={dist_version(dist)}" for dist in ("onnx", "onnxruntime", "numpy")]


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, N_FEATURES), INPUT_NAME)]),
        outputs=Schema([
            TensorSpec(np.dtype(np.int64), (-1,), LABEL_OUTPUT),
            TensorSpec(np.dtype(np.float32), (-1, N_CLASSES), PROBA_OUTPUT),
        ]),
    )


def _tag_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def register(
    tracking_uri: str,
    name: str,
    onnx_path: Path,
    *,
    input_example: np.ndarray,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    tags: Mapping[str, object],
    experiment: str | None = None,
) -> RegisteredVersion:
    import mlflow
    import mlflow.onnx

    mc = client(tracking_uri)
    use(tracking_uri)
    mlflow.set_experiment(experiment or f"train-{name}")
    # log_model mutates the ONNX object it is given: always a fresh one, loaded here.
    model = onnx.load(str(onnx_path))
    str_tags = {k: _tag_value(v) for k, v in tags.items()}
    version_tags = {**str_tags, **{f"metrics.{k}": _tag_value(v) for k, v in metrics.items()}}
    with mlflow.start_run(run_name=f"{name}-{str_tags.get('kind', 'model')}") as run:
        mlflow.log_params({k: _tag_value(v) for k, v in params.items()})
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags(str_tags)
        info = mlflow.onnx.log_model(
            model,
            name=ARTIFACT_NAME,
            signature=signature(),
            input_example={INPUT_NAME: np.ascontiguousarray(input_example, dtype=np.float32)},
            pip_requirements=pip_requirements(),
            onnx_execution_providers=["CPUExecutionProvider"],
            save_as_external_data=False,
        )
        run_id = run.info.run_id
    # Registering separately sets every version tag in the one call that creates the version.
    created = mlflow.register_model(info.model_uri, name, tags=version_tags,
                                    await_registration_for=120)
    version = str(created.version)
    mc.set_registered_model_alias(name, CHALLENGER, version)
    return RegisteredVersion(name=name, version=version, run_id=run_id,
                             model_uri=f"models:/{name}/{version}", tags=version_tags)
