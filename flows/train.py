"""Flow ``train``: train → export → validate → register a model version (alias ``challenger``).

Wiring only; the work is in :mod:`tasks.train`. A model that fails the gate in
``policies/model.yaml`` raises GateBlocked and no version is registered.
"""

from __future__ import annotations

from prefect import flow

from models.kinds import TrainConfig
from models.registry import RegisteredVersion
from tasks.train import (
    KindName,
    check_model_name,
    export_task,
    register_task,
    train_task,
    validate_task,
)


@flow(name="train", log_prints=True)
def train(
    model_name: str = "digits",
    kind: KindName = "torch-mlp",
    seed: int = 0,
    epochs: int = 40,
    hidden: int = 128,
    learning_rate: float = 0.003,
    c: float = 1.0,
    policy_path: str | None = None,
    git_sha: str | None = None,
) -> RegisteredVersion:
    """Register a new version of ``model_name`` if it passes the model gate.

    ``kind``: torch-mlp (PyTorch) or sklearn-logreg (scikit-learn). ``epochs``, ``hidden`` and
    ``learning_rate`` apply to torch-mlp, ``c`` to sklearn-logreg. ``policy_path``: another
    model gate file (default policies/model.yaml). ``git_sha``: the commit being released
    (default: HEAD of the checkout the worker runs).
    """
    name = check_model_name(model_name)
    config = TrainConfig(kind=kind, seed=seed, epochs=epochs, hidden=hidden,
                         learning_rate=learning_rate, c=c)
    trained = train_task(config)
    onnx = export_task(trained, name)
    validated = validate_task(trained, onnx, name, policy_path)
    registered = register_task(trained, onnx, validated, name, git_sha)
    print(f"registered {registered.model_uri} as {registered.alias}")
    return registered
