"""Model attestations on the session platform's Vault and MLflow: a version the train stage
attested is mounted; its ONNX file swapped in MLflow's artifact store, or a version registered
without the train stage's attestation, is refused before any mount, with an audit record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.kinds import TrainConfig
from models.onnx_contract import OnnxInfo
from models.registry.store import client
from policies import model as model_policy
from suite import audit
from suite.errors import DeployError
from suite.settings import Settings, child_env
from tasks import evidence_model, provenance
from tasks.artifacts import sha256_file
from tasks.deploy import fetch_model
from tasks.train import (
    Trained,
    attest_model,
    export_model,
    register_model,
    register_task,
    train_model,
    validate_model,
)

pytestmark = pytest.mark.integration
NAME = "digits-attest"


@dataclass(frozen=True)
class Trial:
    trained: Trained
    onnx: OnnxInfo
    other: Path  # a valid ONNX file of another model: what an attacker swaps in


@pytest.fixture(scope="module")
def trial(platform: Settings, tmp_path_factory: pytest.TempPathFactory) -> Trial:
    tmp = tmp_path_factory.mktemp("attest")
    trained = train_model(TrainConfig(kind="sklearn-logreg"))
    onnx = export_model(trained, tmp / "build", NAME)
    other = export_model(trained, tmp / "other", "digits-look-alike").path
    return Trial(trained, onnx, other)


def _register(platform: Settings, trial: Trial, attest: bool) -> str:
    validated = validate_model(trial.trained, trial.onnx, model_policy.load(), None)
    reg = register_model(platform.mlflow_uri, NAME, trial.trained, trial.onnx, validated,
                         "test-sha")
    if attest:
        attest_model(platform, reg, trial.trained, trial.onnx, "f" * 40)
    return reg.version


def _stored_file(platform: Settings, version: str) -> Path:
    """The version's ONNX file in MLflow's artifact store (``--artifacts-destination``)."""
    source = client(platform.mlflow_uri).get_model_version(NAME, version).source
    model_id = source.removeprefix("models:/")
    found = [p for p in platform.dir("mlflow", "artifacts").rglob("model.onnx")
             if model_id in p.parts]
    assert len(found) == 1, (source, found)
    return found[0]


def test_the_train_stage_attests_and_the_version_is_fetched_for_mounting(
        platform: Settings, trial: Trial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in child_env(platform).items():  # the stage reads settings as a worker does
        monkeypatch.setenv(key, value)
    onnx = export_model(trial.trained, tmp_path / "build", NAME)
    validated = validate_model(trial.trained, onnx, model_policy.load(), None)
    seen = len(audit.trail(platform).records())
    version = register_task.fn(trial.trained, onnx, validated, NAME, "f" * 40).version
    registered = [r for r in audit.trail(platform).records()[seen:]
                  if r.action == "model.register"]
    assert [r.subject for r in registered] == [f"models:/{NAME}/{version}"]
    tags = client(platform.mlflow_uri).get_model_version(NAME, version).tags
    envelope = json.loads(tags[evidence_model.TAG])
    assert envelope["signatures"][0]["keyid"] == "vault-transit:suite-attest:v1"
    stmt = provenance.payload_of(envelope)
    assert stmt["subject"][0]["name"] == f"models:/{NAME}/{version}"
    assert "sha256:" + stmt["subject"][0]["digest"]["sha256"] == onnx.sha256
    assert stmt["predicate"]["training"]["gitCommit"] == "f" * 40
    model = fetch_model(platform, NAME, version, service="model-server", release="r-ok")
    assert sha256_file(Path(model.directory) / "model.onnx") == onnx.sha256
    # the cached copy is checked again on the next fetch, and still passes
    assert fetch_model(platform, NAME, version).directory == model.directory


def test_a_swapped_onnx_file_is_refused_before_it_is_mounted(
        platform: Settings, trial: Trial) -> None:
    version = _register(platform, trial, attest=True)
    stored = _stored_file(platform, version)
    stored.write_bytes(trial.other.read_bytes())  # behind the suite's back
    seen = len(audit.trail(platform).records())
    with pytest.raises(DeployError, match="is not admitted for mounting") as refused:
        fetch_model(platform, NAME, version, service="model-server", release="r-swap")
    message = str(refused.value)
    assert f"digest: the file to mount has {sha256_file(trial.other)}" in message
    assert f"the attestation signed {trial.onnx.sha256}" in message
    # nothing was kept where a replica would mount it
    assert not (platform.dir("releases", "models", NAME, version) / "model.onnx").exists()
    records = audit.trail(platform).records()[seen:]
    assert [(r.action, r.outcome, r.actor, r.subject) for r in records] == [
        ("admission.refused", "refused", "admission", f"models:/{NAME}/{version}")]


def test_a_version_registered_without_an_attestation_is_refused(
        platform: Settings, trial: Trial) -> None:
    version = _register(platform, trial, attest=False)
    with pytest.raises(DeployError, match="has no attestation"):
        fetch_model(platform, NAME, version, service="model-server", release="r-none")
