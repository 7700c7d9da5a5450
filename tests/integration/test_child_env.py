"""Untrusted code stays contained: flow runs get an allow-listed environment, and a service's
tests run in a container of its image with no network and no platform credential."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest

from suite import engine as engine_mod
from suite.settings import CHILD_ENV_NAMES, CHILD_ENV_PREFIXES, Settings
from tasks.images import base as base_image
from tasks.test_stage import run_in_image
from tests.conftest import OPERATOR_SECRET, flow_deployment, prefect_api
from tests.integration.test_models_registry import wait_flow_run

pytestmark = pytest.mark.integration


def test_worker_flow_run_does_not_see_the_operators_secret(platform: Settings, tmp_path: Path):
    api = platform.prefect_api_url
    deployment = flow_deployment(api, "envcheck", "envcheck",
                                 "tests/integration/envcheck_flow.py:envcheck")
    out = tmp_path / "env.json"
    run = prefect_api(api, "POST", f"/deployments/{deployment}/create_flow_run",
                      json={"parameters": {"out": str(out)}}).json()
    assert wait_flow_run(api, run["id"], timeout=120)["state_type"] == "COMPLETED"
    names = set(json.loads(out.read_text()))
    assert OPERATOR_SECRET[0] not in names
    # nothing of the operator's environment beyond the allow-list reached the flow run
    leaked = {n for n in os.environ if n in names and n not in CHILD_ENV_NAMES
              and not n.startswith(CHILD_ENV_PREFIXES)}
    # the worker hands its flow runs the MLflow user's login itself (this process has it too)
    assert leaked <= {"PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD"}, leaked
    assert "SUITE_HOME" in names and "PATH" in names


def test_service_tests_in_the_image_reach_neither_vault_nor_a_credential(
    platform: Settings, tmp_path: Path,
) -> None:
    engine: docker.DockerClient = engine_mod.client(platform)
    base = base_image.ensure_base(platform, engine)
    secret_id = platform.dir("vault", "worker-secret-id")
    probe = ("import os, sys\n"
             "nets = sorted(os.listdir('/sys/class/net'))\n"
             "creds = [k for k in os.environ if 'VAULT' in k or k.startswith(('AWS_', 'SUITE_'))]\n"
             "print('interfaces', nets, 'credentials', creds, 'vault files', "
             "os.path.exists(sys.argv[1]))\n"
             "sys.exit(0 if nets == ['lo'] and not creds and not os.path.exists(sys.argv[1]) "
             "else 1)\n")
    report = run_in_image(engine, base.local_ref, ["python3", "-c", probe, str(secret_id)],
                          log_path=tmp_path / "probe.log", timeout_s=60)
    log = (tmp_path / "probe.log").read_text()
    assert report.exit_code == 0, log
    assert "interfaces ['lo'] credentials [] vault files False" in log
