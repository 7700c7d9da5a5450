from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import kinds
from models.kinds import TrainConfig
from models.onnx_contract import check_file
from models.validate import onnx_predict
from suite.errors import ConfigError
from tasks.train import Trained, export_model, train_model


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="sklearn-logreg, torch-mlp"):
        kinds.get("xgboost")


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("learning_rate", 0.0), ("c", -1.0)])
def test_bad_hyper_parameters_name_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key):
        TrainConfig(**{key: value})  # type: ignore[arg-type]


def test_torch_training_is_deterministic() -> None:
    config = TrainConfig(kind="torch-mlp", epochs=3, seed=7)
    a, b = train_model(config), train_model(config)
    for (name, wa), (_, wb) in zip(a.model.model.state_dict().items(),
                                   b.model.model.state_dict().items(), strict=True):
        assert torch.equal(wa, wb), name
    assert a.model.metrics == b.model.metrics
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


def test_torch_model_learns(torch_trained: Trained) -> None:
    assert torch_trained.model.metrics["val_accuracy"] > 0.9


def test_sklearn_model_learns(sklearn_trained: Trained) -> None:
    assert sklearn_trained.model.metrics["val_accuracy"] > 0.9


@pytest.mark.parametrize("which", ["torch_trained", "sklearn_trained"])
def test_export_is_one_file_with_dynamic_batch_and_parity(
    which: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    trained: Trained = request.getfixturevalue(which)
    info = export_model(trained, tmp_path, "digits-unit")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no external data file
    assert check_file(info.path).sha256 == info.sha256
    kind = kinds.get(trained.model.kind)
    for rows in (1, 7, 360):
        x = trained.split.x_test[:rows]
        labels, proba = onnx_predict(info.path, x)
        assert labels.shape == (rows,) and proba.shape == (rows, 10)
        assert np.max(np.abs(proba - kind.predict_proba(trained.model, x))) <= 1e-4
