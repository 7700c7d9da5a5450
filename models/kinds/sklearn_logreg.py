"""``sklearn-logreg``: standardised features and multinomial logistic regression in scikit-learn,
exported with skl2onnx, so the pipeline is not PyTorch-only.

Uses ``c`` (inverse regularisation strength) and ``max_iter``; the lbfgs solver is deterministic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.data import N_FEATURES, Split
from models.kinds.base import TrainConfig, TrainedModel, accuracy
from models.onnx_contract import INPUT_NAME, LABEL_OUTPUT, PROBA_OUTPUT


class SklearnLogReg:
    name = "sklearn-logreg"
    framework = "scikit-learn"

    def train(self, split: Split, config: TrainConfig) -> TrainedModel:
        pipe = Pipeline([
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=config.c, max_iter=config.max_iter)),
        ])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(split.x_train, split.y_train)
        metrics = {
            "train_accuracy": accuracy(pipe.predict_proba(split.x_train), split.y_train),
            "val_accuracy": accuracy(pipe.predict_proba(split.x_val), split.y_val),
        }
        return TrainedModel(kind=self.name, framework=self.framework, model=pipe, config=config,
                            data_digest=split.digest, metrics=metrics)

    def predict_proba(self, trained: TrainedModel, x: np.ndarray) -> np.ndarray:
        proba: np.ndarray = trained.model.predict_proba(x)
        return proba

    def export(self, trained: TrainedModel, path: Path) -> None:
        model = to_onnx(
            trained.model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
            options={LogisticRegression: {"zipmap": False}},
            final_types=None,
        )
        outputs = [o.name for o in model.graph.output]
        if outputs != [LABEL_OUTPUT, PROBA_OUTPUT]:  # skl2onnx's names; rename if they change
            raise RuntimeError(f"skl2onnx produced outputs {outputs}")
        for value in (*model.graph.input, *model.graph.output):  # name the dynamic axis
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        onnx.save_model(model, str(path), save_as_external_data=False)
