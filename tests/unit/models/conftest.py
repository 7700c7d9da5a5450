"""Shared fixtures: small trained and exported models (trained once per session), and ``run``,
which runs an HTTP server scenario on the stdlib loop and on uvloop (see http_harness.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from models.kinds import TrainConfig
from tasks.train import Trained, export_model, train_model
from tests.unit.models.http_harness import SCENARIO_TIMEOUT_S, Run, Scenario


@pytest.fixture(scope="session")
def sklearn_trained() -> Trained:
    return train_model(TrainConfig(kind="sklearn-logreg"))


@pytest.fixture(scope="session")
def sklearn_onnx(sklearn_trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(sklearn_trained, tmp_path_factory.mktemp("sk"), "digits-unit").path


@pytest.fixture(scope="session")
def torch_trained() -> Trained:
    return train_model(TrainConfig(kind="torch-mlp", epochs=8))


def _loop_factories() -> list[Any]:
    params = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip(
            reason="uvloop is not installed (.venv/bin/pip install uvloop)")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a scenario to completion on a fresh loop of the parametrized kind."""
    factory = request.param

    def run(scenario: Scenario) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))

    return run
