"""`suite down && suite up` keeps data: a KV secret, a registered model, a Prefect deployment.

Runs on its own platform with the Postgres backend (`--database postgres`), so it also covers
the local PostgreSQL cluster.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from suite import vault
from suite.platform import manager
from suite.settings import Settings
from suite.vault_policy import Purpose
from tests.conftest import free_ports, prefect_api

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None and not any(
    __import__("pathlib").Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    reason="PostgreSQL server missing: apt-get install postgresql")
def test_down_up_keeps_vault_keys_secrets_models_and_deployments():
    # the postgres user must reach the state dir: pytest's tmp dirs are private to root
    home = Path(tempfile.mkdtemp(prefix="suite-pg-", dir="/var/tmp"))
    home.chmod(0o755)
    settings = Settings(home=home / "home", ports=free_ports(), workers=1, database="postgres")
    only = ["vault", "prefect", "mlflow", "workers"]
    try:
        manager.up(settings, only=only)
        assert {s.name for s in manager.status(settings) if s.healthy} >= {
            "postgres", "vault", "prefect", "mlflow", "worker-1"}
        api = settings.prefect_api_url
        vault.put_secret(vault.client(settings), "keep/me", "k", "v1")
        sign_key = vault.root_client(settings).secrets.transit.read_key(name="suite-sign")
        MlflowClient(settings.mlflow_uri).create_registered_model("keep-model")
        flow = prefect_api(api, "POST", "/flows/", json={"name": "keep-flow"}).json()
        dep = prefect_api(api, "POST", "/deployments/", json={
            "name": "keep-dep", "flow_id": flow["id"], "work_pool_name": "suite"})
        assert dep.status_code in (200, 201), dep.text

        init = json.loads((vault.vault_dir(settings) / "init.json").read_text())
        assert "root_token" not in init  # revoked after the bootstrap

        stopped = manager.down(settings)
        assert "vault" in stopped and "postgres" in stopped
        assert all(s.state == "down" for s in manager.status(settings))

        manager.up(settings, only=only)
        assert vault.get_secret(vault.client(settings), "keep/me", "k") == "v1"
        again = vault.root_client(settings).secrets.transit.read_key(name="suite-sign")
        assert again["data"]["keys"] == sign_key["data"]["keys"]
        # the audit identity still signs after the restart (its rotated secret-id), and only it
        signed = vault.signer_client(settings, Purpose.AUDIT).secrets.transit.sign_data(
            name="suite-audit", hash_input=base64.b64encode(b"after restart").decode())
        assert signed["data"]["signature"].startswith("vault:v")
        assert MlflowClient(settings.mlflow_uri).get_registered_model("keep-model").name
        got = prefect_api(api, "GET", "/deployments/name/keep-flow/keep-dep")
        assert got.status_code == 200 and got.json()["work_pool_name"] == "suite"
    finally:
        manager.down(settings)
        shutil.rmtree(home, ignore_errors=True)
