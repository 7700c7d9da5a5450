"""The MLflow model registry side of the model lifecycle (MLflow 3: ``name=``, aliases)."""

from __future__ import annotations

from models.registry.champion import ChampionChange, history, lineage, promote, rollback
from models.registry.log import RegisteredVersion, register
from models.registry.store import CHALLENGER, CHAMPION, champion_onnx, download_onnx

__all__ = [
    "CHALLENGER", "CHAMPION", "ChampionChange", "RegisteredVersion", "champion_onnx",
    "download_onnx", "history", "lineage", "promote", "register", "rollback",
]
