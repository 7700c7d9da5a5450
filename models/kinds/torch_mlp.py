"""``torch-mlp``: a two-hidden-layer perceptron in PyTorch.

Uses ``seed``, ``epochs``, ``hidden``, ``learning_rate`` and ``batch_size``. Training is
deterministic: seeded weights and shuffling, ``torch.use_deterministic_algorithms`` and one
intra-op thread while it runs (the previous process settings are restored afterwards). The
weights of the epoch with the best validation accuracy are kept.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.data import N_CLASSES, N_FEATURES, Split
from models.kinds.base import TrainConfig, TrainedModel, accuracy
from models.onnx_contract import INPUT_NAME, OUTPUT_NAMES

PIXEL_MAX = 16.0


class DigitsMLP(nn.Module):
    """Takes raw pixels 0..16 (scaling is part of the graph, so clients send what they have)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_FEATURES, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, N_CLASSES),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x / PIXEL_MAX)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        proba = torch.softmax(self.logits(x), dim=1)
        return torch.argmax(proba, dim=1), proba


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def _proba(model: DigitsMLP, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        _, proba = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return proba.numpy()


class TorchMLP:
    name = "torch-mlp"
    framework = "pytorch"

    def train(self, split: Split, config: TrainConfig) -> TrainedModel:
        with deterministic(config.seed):
            model = DigitsMLP(config.hidden)
            optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
            shuffle = torch.Generator().manual_seed(config.seed)
            x = torch.from_numpy(split.x_train)
            y = torch.from_numpy(split.y_train)
            best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
            for epoch in range(1, config.epochs + 1):
                model.train()
                order = torch.randperm(len(y), generator=shuffle)
                for start in range(0, len(y), config.batch_size):
                    idx = order[start:start + config.batch_size]
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model.logits(x[idx]), y[idx])
                    loss.backward()
                    optimizer.step()
                val_acc = accuracy(_proba(model, split.x_val), split.y_val)
                if val_acc > best_acc:
                    best_acc, best_epoch = val_acc, epoch
                    best_state = copy.deepcopy(model.state_dict())
            model.load_state_dict(best_state)
            model.eval()
        metrics = {
            "train_accuracy": accuracy(_proba(model, split.x_train), split.y_train),
            "val_accuracy": best_acc,
            "best_epoch": float(best_epoch),
        }
        return TrainedModel(kind=self.name, framework=self.framework, model=model, config=config,
                            data_digest=split.digest, metrics=metrics)

    def predict_proba(self, trained: TrainedModel, x: np.ndarray) -> np.ndarray:
        return _proba(trained.model, x)

    def export(self, trained: TrainedModel, path: Path) -> None:
        model: DigitsMLP = trained.model
        model.eval()
        example = (torch.zeros(2, N_FEATURES, dtype=torch.float32),)
        # The dynamo exporter logs its progress and warns about optional torchvision ops.
        quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, example, str(path),
                    input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    external_data=False, dynamo=True, verbose=False,
                )
        finally:
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
