"""Model lifecycle against the real platform: the `train` flow (run by a worker from the
deployment in prefect.yaml) registers a challenger in MLflow; a separate process loads
``models:/NAME@champion``; the gate refuses a worse model; `suite model promote | rollback |
history` round trip, with the audit trail.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from models import registry
from models.kinds import TrainConfig
from models.validate import onnx_predict
from policies import model as model_policy
from suite import audit, cli
from suite.errors import GateBlocked
from suite.settings import Settings, child_env
from tasks.train import (
    export_model,
    register_model,
    train_model,
    validate_model,
    validate_task,
)
from tests.conftest import REPO, prefect_api

pytestmark = pytest.mark.integration
NAME = "digits-it"
DEPLOYMENT = "train/train"


def suite_subprocess(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The `suite` console script, as a user runs it."""
    suite_bin = Path(sys.executable).with_name("suite")
    return subprocess.run([str(suite_bin), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=180)


def suite_cli(platform: Settings, *args: str) -> tuple[int, str, str]:
    """`suite ...` in this process (the same code without ~3 s of imports per call)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        for key, value in child_env(platform).items():
            if key.startswith("SUITE_"):
                mp.setenv(key, value)
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def wait_flow_run(api: str, run_id: str, timeout: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = prefect_api(api, "GET", f"/flow_runs/{run_id}").json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return dict(run)
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish in {timeout}s")


def flow_run_failure(api: str, run: dict[str, object]) -> str:
    """What a failed flow run said: its state's message and its last error logs."""
    state = run.get("state")
    message = state.get("message", "") if isinstance(state, dict) else ""
    logs = prefect_api(api, "POST", "/logs/filter", json={
        "logs": {"flow_run_id": {"any_": [run["id"]]}, "level": {"ge_": 40}},
        "sort": "TIMESTAMP_DESC", "limit": 3}).json()
    return f"{message}\n" + "\n".join(str(entry["message"])[-1500:] for entry in logs)


@pytest.fixture(scope="module")
def mlflow_client(platform: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=platform.mlflow_uri, registry_uri=platform.mlflow_uri)


def train_entry() -> dict[str, Any]:
    """The `train` deployment as written in prefect.yaml."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entries = [d for d in spec["deployments"] if d["name"] == "train"]
    assert len(entries) == 1, "prefect.yaml needs exactly one deployment named train"
    return dict(entries[0])


@pytest.fixture(scope="module")
def deployed_version(platform: Settings) -> str:
    """The `train` entry of prefect.yaml as a deployment (created through the API: `prefect
    deploy` itself costs ~18 s, see the slow test below); a worker runs it."""
    entry = train_entry()
    assert entry["entrypoint"] == "flows/train.py:train"
    assert entry["work_pool"]["name"] == "suite"
    api = platform.prefect_api_url
    flow = prefect_api(api, "POST", "/flows/", json={"name": "train"}).json()
    resp = prefect_api(api, "POST", "/deployments/", json={
        "name": entry["name"], "flow_id": flow["id"], "work_pool_name": "suite",
        "entrypoint": entry["entrypoint"], "path": str(REPO),
        "parameters": entry["parameters"],
        "pull_steps": [{"prefect.deployments.steps.set_working_directory":
                        {"directory": str(REPO)}}],
        "enforce_parameter_schema": False,
    })
    assert resp.status_code in (200, 201), resp.text
    resp = prefect_api(api, "POST", f"/deployments/{resp.json()['id']}/create_flow_run",
                       json={"parameters": {**entry["parameters"], "model_name": NAME,
                                           "epochs": 15}})
    assert resp.status_code in (200, 201), resp.text
    run = wait_flow_run(api, resp.json()["id"])
    assert run["state_type"] == "COMPLETED", flow_run_failure(api, run)
    found = registry.store.version_by_alias(registry.store.client(platform.mlflow_uri), NAME,
                                            registry.CHALLENGER)
    assert found is not None
    return str(found.version)


@pytest.fixture(scope="module")
def champion_v1(deployed_version: str, platform_env: dict[str, str]) -> str:
    proc = suite_subprocess(platform_env, "model", "promote", NAME, "--reason", "first model")
    assert proc.returncode == 0, proc.stderr
    assert f"champion none -> v{deployed_version}" in proc.stdout
    return deployed_version


def test_train_deployment_registers_a_challenger_with_provenance(
    deployed_version: str, platform: Settings, mlflow_client: MlflowClient, tmp_path: Path,
) -> None:
    mv = mlflow_client.get_model_version(NAME, deployed_version)
    tags = mv.tags
    assert len(tags["git_sha"].split("+")[0]) == 40 or tags["git_sha"] == "unknown"
    assert tags["data_digest"].startswith("sha256:")
    assert tags["kind"] == "torch-mlp"
    assert float(tags["metrics.test_accuracy"]) >= 0.9
    assert float(tags["parity.max_abs_diff"]) <= 1e-4
    assert "parity max abs diff" in tags["gate"]
    registry.store.use(platform.mlflow_uri)
    root = Path(download_artifacts(artifact_uri=f"models:/{NAME}/{deployed_version}",
                                   dst_path=str(tmp_path), tracking_uri=platform.mlflow_uri,
                                   registry_uri=platform.mlflow_uri))
    files = sorted(p.name for p in root.rglob("*") if p.is_file())
    assert [f for f in files if f.endswith(".onnx")] == ["model.onnx"]
    assert not [f for f in files if f.endswith(".data")], files  # one self-contained file
    mlmodel = (root / "MLmodel").read_text()
    assert "onnx:" in mlmodel and "CPUExecutionProvider" in mlmodel
    assert "signature:" in mlmodel
    requirements = (root / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "torch" not in requirements


def test_champion_loads_and_predicts_in_a_separate_process(
    champion_v1: str, platform: Settings, platform_env: dict[str, str], tmp_path: Path,
) -> None:
    split = train_model(TrainConfig(kind="sklearn-logreg")).split  # same seed, same rows
    x = split.x_test[:50]
    np.save(tmp_path / "x.npy", x)
    code = (
        "import json, sys, numpy as np, mlflow.pyfunc\n"
        f"m = mlflow.pyfunc.load_model('models:/{NAME}@champion')\n"
        f"out = m.predict({{'input': np.load(sys.argv[1])}})\n"
        "print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))\n"
    )
    env = {**platform_env, "MLFLOW_TRACKING_URI": platform.mlflow_uri}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy")], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    onnx_file = registry.download_onnx(platform.mlflow_uri, NAME, champion_v1, tmp_path / "m")
    labels, proba = onnx_predict(onnx_file, x)
    assert remote["label"] == labels.tolist()
    np.testing.assert_allclose(remote["probabilities"], proba, atol=1e-6)


def test_gate_blocks_a_worse_model_registers_nothing_and_audits(
    champion_v1: str, platform: Settings, mlflow_client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    before = len(mlflow_client.search_model_versions(f"name='{NAME}'"))
    weak = train_model(TrainConfig(kind="torch-mlp", epochs=1, hidden=4, learning_rate=1e-3))
    info = export_model(weak, tmp_path, NAME)
    lenient = tmp_path / "policy.yaml"
    lenient.write_text("parity: {max_abs_diff: 1.0e-4}\n"
                       "quality: {min_accuracy: 0.0, max_drop_vs_champion: 0.01}\n")
    for key, value in child_env(platform).items():
        if key.startswith("SUITE_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(GateBlocked, match=rf"< champion v{champion_v1} 0\.9\d+ - "
                                          r"quality.max_drop_vs_champion 0.01"):
        validate_task.fn(weak, info, NAME, str(lenient))
    assert len(mlflow_client.search_model_versions(f"name='{NAME}'")) == before
    last = audit.trail(platform).since(None)[-1]
    assert (last.action, last.outcome, last.subject) == ("model.gate", "blocked",
                                                         f"models:/{NAME}")


def test_promote_rollback_history_round_trip(
    champion_v1: str, platform: Settings, platform_env: dict[str, str],
    mlflow_client: MlflowClient, tmp_path: Path,
) -> None:
    trained = train_model(TrainConfig(kind="sklearn-logreg"))
    info = export_model(trained, tmp_path, NAME)
    validated = validate_model(trained, info, model_policy.ModelPolicy(1e-4, 0.9, 0.05),
                               registry.champion_onnx(platform.mlflow_uri, NAME))
    v2 = register_model(platform.mlflow_uri, NAME, trained, info, validated, "test").version
    assert mlflow_client.get_model_version_by_alias(NAME, "challenger").version == v2

    code, out, err = suite_cli(platform, "model", "promote", NAME, "--reason",
                               "sklearn is better")
    assert code == 0, err
    assert mlflow_client.get_model_version_by_alias(NAME, "champion").version == v2
    assert mlflow_client.get_model_version(NAME, v2).tags["champion.previous"] == champion_v1
    with pytest.raises(Exception, match="challenger"):  # promoted: no longer a challenger
        mlflow_client.get_model_version_by_alias(NAME, "challenger")

    code, out, err = suite_cli(platform, "model", "rollback", NAME, "--reason", "canary failed")
    assert code == 0, err
    assert f"champion v{v2} -> v{champion_v1}" in out
    assert mlflow_client.get_model_version_by_alias(NAME, "champion").version == champion_v1

    code, out, err = suite_cli(platform, "model", "history", NAME, "--json")
    assert code == 0, err
    changes = [(c["action"], c["from_version"], c["to_version"], c["actor"], c["reason"])
               for c in json.loads(out)]
    operator = audit.default_actor(platform)  # the actor is who Vault says, never typed
    assert operator == "token:suite-admin"
    assert changes == [
        ("promote", None, champion_v1, operator, "first model"),
        ("promote", champion_v1, v2, operator, "sklearn is better"),
        ("rollback", v2, champion_v1, operator, "canary failed"),
    ]
    assert all(c.time.endswith("Z") for c in registry.history(platform.mlflow_uri, NAME))
    code, out, _ = suite_cli(platform, "model", "history", NAME)
    assert "canary failed" in out and "TIME" in out

    code, _, err = suite_cli(platform, "model", "rollback", NAME)
    assert code == 2
    assert "no previous champion" in err

    events = [(r.action, r.subject) for r in audit.trail(platform).since(None)
              if r.action in ("model.promote", "model.rollback")]
    assert events[-3:] == [("model.promote", f"models:/{NAME}/{champion_v1}@champion"),
                           ("model.promote", f"models:/{NAME}/{v2}@champion"),
                           ("model.rollback", f"models:/{NAME}/{champion_v1}@champion")]
    assert audit.verify(platform).ok


def test_cli_errors_are_clear(champion_v1: str, platform: Settings) -> None:
    code, _, err = suite_cli(platform, "model", "history", "no-such-model")
    assert code == 2 and "no registered model named 'no-such-model'" in err
    code, _, err = suite_cli(platform, "model", "promote", NAME, "--version", "999")
    assert code == 2 and "has no version '999'" in err
    code, _, err = suite_cli(platform, "model", "promote", NAME, "--version", champion_v1)
    assert code == 2 and "already champion" in err


@pytest.mark.slow
def test_prefect_deploy_accepts_the_train_entry(
    platform: Settings, platform_env: dict[str, str],
) -> None:
    env = {**platform_env, "SUITE_PROJECT_DIR": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", "train"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    dep = prefect_api(platform.prefect_api_url, "GET", f"/deployments/name/{DEPLOYMENT}")
    assert dep.status_code == 200, dep.text
    body = dep.json()
    assert body["entrypoint"] == "flows/train.py:train" and body["work_pool_name"] == "suite"
    assert set(body["parameter_openapi_schema"]["properties"]) >= {"model_name", "kind", "epochs"}
