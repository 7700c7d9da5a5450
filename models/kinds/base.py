"""What every model kind provides, so the pipeline (export, validation, registry, server) is not
tied to one framework. A kind trains on the digits split, predicts class probabilities with its own
framework (the reference for the ONNX parity check) and exports the ONNX contract of
:mod:`models.onnx_contract`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.data import Split
from suite.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of every kind; each kind reads the ones it uses (see its docstring)."""

    kind: str = "torch-mlp"
    seed: int = 0
    epochs: int = 40
    hidden: int = 128
    learning_rate: float = 3e-3
    batch_size: int = 64
    c: float = 1.0
    max_iter: int = 500

    def __post_init__(self) -> None:
        for key in ("epochs", "hidden", "batch_size", "max_iter"):
            value = getattr(self, key)
            if value < 1:
                raise ConfigError(f"train config {key}={value} (expected an integer >= 1)")
        for key in ("learning_rate", "c"):
            value = getattr(self, key)
            if not value > 0:
                raise ConfigError(f"train config {key}={value} (expected a number > 0)")

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TrainedModel:
    """A trained framework model and what its own framework measured on train/validation data."""

    kind: str
    framework: str
    model: Any
    config: TrainConfig
    data_digest: str
    metrics: Mapping[str, float] = field(default_factory=dict)


class ModelKind(Protocol):
    name: str
    framework: str

    def train(self, split: Split, config: TrainConfig) -> TrainedModel:
        """Deterministic for a given split and config."""
        ...

    def predict_proba(self, trained: TrainedModel, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, N_CLASSES]`` computed by the framework itself."""
        ...

    def export(self, trained: TrainedModel, path: Path) -> None:
        """Write one self-contained ONNX file (no external data) that follows the contract."""
        ...


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))
