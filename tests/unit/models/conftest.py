"""Small trained and exported models shared by the unit tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.kinds import TrainConfig
from tasks.train import Trained, export_model, train_model


@pytest.fixture(scope="session")
def sklearn_trained() -> Trained:
    return train_model(TrainConfig(kind="sklearn-logreg"))


@pytest.fixture(scope="session")
def sklearn_onnx(sklearn_trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(sklearn_trained, tmp_path_factory.mktemp("sk"), "digits-unit").path


@pytest.fixture(scope="session")
def torch_trained() -> Trained:
    return train_model(TrainConfig(kind="torch-mlp", epochs=8))
