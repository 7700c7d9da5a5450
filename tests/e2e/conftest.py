"""End-to-end fixtures: the session platform plus what a release needs (environment for flows
run in this process, the base image, the deployments), and helpers to train and release."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from suite.platform import credentials
from suite.settings import Settings, child_env


@pytest.fixture(scope="session")
def release_platform(platform: Settings) -> Iterator[Settings]:
    from suite import engine, prefect_http
    from suite.deployments import deploy
    from tasks.images.base import ensure_base

    saved = dict(os.environ)
    os.environ.update(child_env(platform))
    os.environ.update(credentials.mlflow_env(platform))
    ensure_base(platform, engine.client(platform))
    deploy(platform, force=True)
    with prefect_http.client_settings(platform.prefect_api_url):
        yield platform
    os.environ.clear()
    os.environ.update(saved)


def train(seed: int) -> str:
    from flows.train import train as train_flow

    gate = str(Path(__file__).with_name("model-gate.yaml"))
    return str(train_flow(model_name="digits", epochs=8, seed=seed, policy_path=gate).version)


def release(**kwargs: Any) -> dict[str, Any]:
    from flows.release import release as release_flow

    return release_flow(**kwargs)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread with this context (Prefect settings live in contextvars)."""
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = ctx.run(fn)
        except BaseException as exc:  # reported by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box
