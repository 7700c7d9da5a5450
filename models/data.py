"""The training data: scikit-learn's bundled ``load_digits`` (8x8 images, 10 classes), no download.

The split into train / validation / test is fixed by a seed and stratified by class, so the same
seed always gives the same rows, and the digest tagged on a registered model version says exactly
which data (and which split of it) the model was trained and judged on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from models.onnx_contract import N_CLASSES, N_FEATURES
from suite.errors import ConfigError

__all__ = ["DATASET", "N_CLASSES", "N_FEATURES", "Split", "load_split"]

DATASET = "sklearn.load_digits"


@dataclass(frozen=True)
class Split:
    """Features are raw pixel intensities 0..16 as float32; labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    digest: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _digest(seed: int, parts: list[np.ndarray]) -> str:
    h = hashlib.sha256(f"{DATASET};seed={seed}".encode())
    for arr in parts:
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return "sha256:" + h.hexdigest()


def load_split(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Split:
    """The digits data split by ``seed``: deterministic, stratified by class."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"split fractions val={val_fraction} test={test_fraction} are invalid "
            "(expected each in (0, 1) and their sum below 1, e.g. 0.2 and 0.2)"
        )
    x_all, y_all = load_digits(return_X_y=True)
    x = np.asarray(x_all, dtype=np.float32)
    y = np.asarray(y_all, dtype=np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
        stratify=y_rest,
    )
    parts = [x_train, y_train, x_val, y_val, x_test, y_test]
    return Split(
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        seed=seed, digest=_digest(seed, parts),
    )


def default_rows(n: int = 64) -> list[list[float]]:
    """Real inputs: rows of the held-out digits split (the model server's feature shape), for
    load and smoke traffic."""
    split = load_split()
    return [[float(v) for v in row] for row in split.x_test[:n]]
