"""`suite down && suite up` keeps data: a KV secret, a registered model, a Prefect deployment,
a release slot's lease.

Runs on its own platform with the Postgres backend (`--database postgres`), so it also covers
the local PostgreSQL cluster: it refuses a connection without the password, also after a
restart that switches a cluster of an earlier version (``trust`` in pg_hba.conf) to scram.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from suite import vault
from suite.platform import credentials, manager
from suite.platform.service import find_binary
from suite.services.onboard import concurrency_limit, ensure_concurrency_limit
from suite.settings import Settings
from suite.vault_policy import Purpose
from tasks.reconcile import free_release_slot
from tests.conftest import free_ports, prefect_api
from tests.integration.test_release_slot import take_slot

pytestmark = pytest.mark.integration


def _psql(settings: Settings, password: str | None) -> subprocess.CompletedProcess[str]:
    """``SELECT 1`` as role postgres over TCP, with ``password`` or none (-w: never prompt)."""
    env = {"PATH": "/usr/bin:/bin", **({"PGPASSWORD": password} if password else {})}
    return subprocess.run(
        [find_binary("psql", "apt-get install postgresql"), "-h", settings.host, "-p",
         str(settings.port("postgres")), "-U", "postgres", "-w", "-d", "prefect", "-tAc",
         "SELECT 1"], env=env, capture_output=True, text=True, check=False, timeout=30)


def _refused_without_password(settings: Settings) -> None:
    anonymous = _psql(settings, None)
    assert anonymous.returncode != 0
    assert "password" in anonymous.stderr, anonymous.stderr
    wrong = _psql(settings, "not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    ok = _psql(settings, credentials.password(settings, "postgres"))
    assert ok.returncode == 0 and ok.stdout.strip() == "1", ok.stderr


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None and not any(
    __import__("pathlib").Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    reason="PostgreSQL server missing: apt-get install postgresql")
def test_down_up_keeps_vault_keys_secrets_models_and_deployments(monkeypatch: pytest.MonkeyPatch):
    # the postgres user must reach the state dir: pytest's tmp dirs are private to root
    home = Path(tempfile.mkdtemp(prefix="suite-pg-", dir="/var/tmp"))
    home.chmod(0o755)
    settings = Settings(home=home / "home", ports=free_ports(), workers=1, database="postgres")
    only = ["vault", "prefect", "mlflow", "workers"]
    try:
        manager.up(settings, only=only)
        assert {s.name for s in manager.status(settings) if s.healthy} >= {
            "postgres", "vault", "prefect", "mlflow", "worker-1"}
        _refused_without_password(settings)
        api = settings.prefect_api_url
        vault.put_secret(vault.client(settings), "keep/me", "k", "v1")
        sign_key = vault.root_client(settings).secrets.transit.read_key(name="suite-sign")
        # this platform's MLflow user, not the session platform's (MLflow reads the environment)
        for name, value in credentials.mlflow_env(settings).items():
            monkeypatch.setenv(name, value)
        # both URIs: a registry URI set process-wide by an earlier test (models.registry.store
        # sets it) would send the registry calls to the session platform's MLflow instead
        mc = MlflowClient(settings.mlflow_uri, registry_uri=settings.mlflow_uri)
        mc.create_registered_model("keep-model")
        flow = prefect_api(api, "POST", "/flows/", json={"name": "keep-flow"}).json()
        dep = prefect_api(api, "POST", "/deployments/", json={
            "name": "keep-dep", "flow_id": flow["id"], "work_pool_name": "suite"})
        assert dep.status_code in (200, 201), dep.text
        # a release's slot, held under a lease as by a run the restart then kills
        ensure_concurrency_limit(settings, "keep")
        lease = take_slot(api, "keep")

        init = json.loads((vault.vault_dir(settings) / "init.json").read_text())
        assert "root_token" not in init  # revoked after the bootstrap

        stopped = manager.down(settings)
        assert "vault" in stopped and "postgres" in stopped
        assert all(s.state == "down" for s in manager.status(settings))

        # a cluster of an earlier version trusted everyone: the next start switches it
        hba = settings.dir("postgres", "data", "pg_hba.conf")
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        manager.up(settings, only=only)
        assert "trust" not in hba.read_text()
        _refused_without_password(settings)
        assert vault.get_secret(vault.client(settings), "keep/me", "k") == "v1"
        again = vault.root_client(settings).secrets.transit.read_key(name="suite-sign")
        assert again["data"]["keys"] == sign_key["data"]["keys"]
        # the audit identity still signs after the restart (its rotated secret-id), and only it
        signed = vault.signer_client(settings, Purpose.AUDIT).secrets.transit.sign_data(
            name="suite-audit", hash_input=base64.b64encode(b"after restart").decode())
        assert signed["data"]["signature"].startswith("vault:v")
        # the platform user is still the model's owner: it may edit it after the restart
        mc.set_registered_model_tag("keep-model", "kept", "yes")
        assert mc.get_registered_model("keep-model").tags == {
            "kept": "yes"}
        got = prefect_api(api, "GET", "/deployments/name/keep-flow/keep-dep")
        assert got.status_code == 200 and got.json()["work_pool_name"] == "suite"
        # the lease outlived the server (kept on disk), so the reconciler can give it back: with
        # leases in memory it was gone, and the slot stayed taken for good
        limit = f"/v2/concurrency_limits/{concurrency_limit('keep')}"
        assert prefect_api(api, "GET", limit).json()["active_slots"] == 1
        free_release_slot(settings, "keep", lease)
        assert prefect_api(api, "GET", limit).json()["active_slots"] == 0
    finally:
        manager.down(settings)
        shutil.rmtree(home, ignore_errors=True)
