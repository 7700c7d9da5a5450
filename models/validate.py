"""The model gate: measure an exported model, then decide (pure code) if it may be registered.

Measurements run ONNX Runtime (CPU) on the held-out test split: parity against the training
framework's own probabilities, accuracy, and the current champion's accuracy on the very same rows
(never a number copied from its tags, which may come from another split). :func:`evaluate` is
pure and gives one reason per check, passed or not, so a refusal says the measured value and the
threshold it missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.data import Split
from models.kinds.base import ModelKind, TrainedModel
from models.onnx_contract import INPUT_NAME, LABEL_OUTPUT, PROBA_OUTPUT
from policies.model import ModelPolicy
from suite.errors import GateBlocked

GATE = "model"


@dataclass(frozen=True)
class Measurements:
    parity_max_abs_diff: float
    accuracy: float
    n_test: int
    champion_version: str | None = None
    champion_accuracy: float | None = None

    def as_metrics(self) -> dict[str, float]:
        out = {"test_accuracy": self.accuracy, "parity_max_abs_diff": self.parity_max_abs_diff}
        if self.champion_accuracy is not None:
            out["champion_test_accuracy"] = self.champion_accuracy
        return out


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    failures: tuple[str, ...] = field(default_factory=tuple)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, probabilities)`` from ONNX Runtime."""
    labels, proba = session(path).run(
        [LABEL_OUTPUT, PROBA_OUTPUT], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
    )
    return np.asarray(labels), np.asarray(proba)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    labels, _ = onnx_predict(path, x)
    return float(np.mean(labels == y))


def measure(
    kind: ModelKind,
    trained: TrainedModel,
    onnx_path: Path,
    split: Split,
    champion: tuple[str, Path] | None = None,
) -> Measurements:
    """``champion`` is ``(version, path to its ONNX file)`` when a champion exists."""
    labels, proba = onnx_predict(onnx_path, split.x_test)
    reference = kind.predict_proba(trained, split.x_test)
    diff = float(np.max(np.abs(proba.astype(np.float64) - reference.astype(np.float64))))
    champion_version, champion_acc = None, None
    if champion is not None:
        champion_version = champion[0]
        champion_acc = onnx_accuracy(champion[1], split.x_test, split.y_test)
    return Measurements(
        parity_max_abs_diff=diff,
        accuracy=float(np.mean(labels == split.y_test)),
        n_test=len(split.y_test),
        champion_version=champion_version,
        champion_accuracy=champion_acc,
    )


def evaluate(policy: ModelPolicy, m: Measurements) -> GateDecision:
    checks: list[tuple[bool, str]] = []
    diff_ok = math.isfinite(m.parity_max_abs_diff) and m.parity_max_abs_diff <= (
        policy.parity_max_abs_diff)
    checks.append((diff_ok, (
        f"parity max abs diff {m.parity_max_abs_diff:.3g} "
        f"{'<=' if diff_ok else '>'} parity.max_abs_diff {policy.parity_max_abs_diff:g}"
    )))
    acc_ok = m.accuracy >= policy.min_accuracy
    checks.append((acc_ok, (
        f"test accuracy {m.accuracy:.4f} {'>=' if acc_ok else '<'} "
        f"quality.min_accuracy {policy.min_accuracy:g} (n={m.n_test})"
    )))
    if m.champion_accuracy is None:
        checks.append((True, "no champion to compare with"))
    else:
        floor = m.champion_accuracy - policy.max_drop_vs_champion
        vs_ok = m.accuracy >= floor - 1e-12
        checks.append((vs_ok, (
            f"test accuracy {m.accuracy:.4f} {'>=' if vs_ok else '<'} champion "
            f"v{m.champion_version} {m.champion_accuracy:.4f} - quality.max_drop_vs_champion "
            f"{policy.max_drop_vs_champion:g} = {floor:.4f}"
        )))
    failures = tuple(reason for ok, reason in checks if not ok)
    return GateDecision(allowed=not failures, reasons=tuple(r for _, r in checks),
                        failures=failures)


def enforce(decision: GateDecision) -> None:
    if not decision.allowed:
        raise GateBlocked(GATE, list(decision.failures))
