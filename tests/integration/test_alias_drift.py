"""An alias moved in MLflow behind the suite's back (issue 13 item 7), on the session platform:
`suite audit verify` and `suite model history` report it and exit 1, and `suite model rollback`
refuses to follow history tags the audit trail does not back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models import registry
from models.kinds import TrainConfig
from models.registry.champion import HISTORY_PREFIX, ChampionChange
from models.registry.store import client as mlflow_client
from policies import model as model_policy
from suite import audit
from suite.settings import Settings
from tasks.train import export_model, register_model, train_model, validate_model

pytestmark = pytest.mark.integration
NAME = "drift-it"


def suite(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def test_an_alias_moved_directly_in_mlflow_fails_audit_verify(
        platform: Settings, platform_env: dict[str, str], tmp_path: Path) -> None:
    trained = train_model(TrainConfig(kind="sklearn-logreg"))
    info = export_model(trained, tmp_path / "build", NAME)
    validated = validate_model(trained, info, model_policy.load(), None)
    versions = []
    for _ in range(2):  # registered and audited as the train flow's register task does
        reg = register_model(platform.mlflow_uri, NAME, trained, info, validated, "test")
        audit.append(platform, action="model.register", subject=f"models:/{NAME}/{reg.version}",
                     inputs={"onnx": info.sha256, "alias": reg.alias})
        versions.append(reg.version)
        if len(versions) == 1:
            registry.promote(platform, NAME, reg.version, actor="pytest", reason="first")
    v1, v2 = versions

    ok = suite(platform_env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "model aliases: OK" in ok.stdout

    # someone with MLflow access moves champion to v2 and forges a history tag to match
    mc = mlflow_client(platform.mlflow_uri)
    mc.set_registered_model_alias(NAME, "champion", v2)
    forged_key = f"{HISTORY_PREFIX}99999999999999999999"
    mc.set_registered_model_tag(NAME, forged_key, ChampionChange(
        "2026-12-02T00:00:00.000Z", "promote", v1, v2, "alice", "looks legit").to_json())
    try:
        bad = suite(platform_env, "audit", "verify")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert (f"champion of {NAME} is v{v2} in MLflow, but the audit trail's last move "
                f"(record ") in bad.stdout
        assert f"set v{v1}; moved outside the suite" in bad.stdout

        history = suite(platform_env, "model", "history", NAME)
        assert history.returncode == 1
        assert f"MISMATCH: champion of {NAME} is v{v2} in MLflow" in history.stderr
        assert "champion.history tags" in history.stderr and "disagree" in history.stderr

        refused = suite(platform_env, "model", "rollback", NAME, "--reason", "follow the tags")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "moved outside the suite" in refused.stderr
        assert mc.get_model_version_by_alias(NAME, "champion").version == v2  # nothing moved
    finally:  # put the registry back as the trail says, for the session's later verifies
        mc.set_registered_model_alias(NAME, "champion", v1)
        mc.delete_registered_model_tag(NAME, forged_key)
    again = suite(platform_env, "audit", "verify")
    assert again.returncode == 0, again.stdout + again.stderr
