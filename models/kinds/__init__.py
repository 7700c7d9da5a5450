"""Model kinds: one module per framework, registered here by name."""

from __future__ import annotations

from models.kinds.base import ModelKind, TrainConfig, TrainedModel
from models.kinds.sklearn_logreg import SklearnLogReg
from models.kinds.torch_mlp import TorchMLP
from suite.errors import ConfigError

__all__ = ["KINDS", "ModelKind", "TrainConfig", "TrainedModel", "get"]

KINDS: dict[str, ModelKind] = {
    TorchMLP.name: TorchMLP(),
    SklearnLogReg.name: SklearnLogReg(),
}


def get(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError as exc:
        raise ConfigError(
            f"model kind {name!r} is not known (expected one of {', '.join(sorted(KINDS))})"
        ) from exc
