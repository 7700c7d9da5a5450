"""The local platform as a user sees it, against the real services of the session fixture."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import hvac
import hvac.exceptions
import pytest

from suite import vault
from suite.errors import PortInUse
from suite.platform import credentials, manager, process
from suite.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration
SUITE = [sys.executable, "-m", "suite.cli"]


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run([*SUITE, *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_status_shows_every_service_healthy_with_url(platform: Settings, platform_env):
    result = run_cli(platform_env, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("vault", "prefect", "mlflow", "prometheus", "registry", "worker-1", "worker-2"):
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(name))
        assert "healthy" in line
    assert platform.url("prefect") in result.stdout
    assert platform.url("mlflow") in result.stdout


def test_prefect_and_mlflow_uis_answer_html(platform: Settings):
    # MLflow's UI asks for a user (the browser's basic-auth prompt: test_platform_auth)
    for url, auth in ((platform.url("prefect"), None),
                      (platform.url("mlflow"), credentials.mlflow_login(platform))):
        resp = httpx.get(url, timeout=10, follow_redirects=True, auth=auth)
        assert resp.status_code == 200
        assert "<html" in resp.text.lower()


def test_vault_init_material_is_private(platform: Settings):
    vdir = platform.dir("vault")
    for name in ("init.json", "admin-token", "worker-role-id", "worker-secret-id"):
        assert (vdir / name).stat().st_mode & 0o777 == 0o600, name


def test_vault_bootstrap_created_mounts_keys_and_approle(platform: Settings):
    root = vault.root_client(platform)
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["options"]["version"] == "2"
    sign = root.secrets.transit.read_key(name="suite-sign")["data"]
    data = root.secrets.transit.read_key(name="suite-data")["data"]
    assert (sign["type"], data["type"]) == ("ed25519", "aes256-gcm96")
    assert "approle/" in root.sys.list_auth_methods()["data"]


def test_secret_put_get_round_trip_never_leaks_the_value(platform: Settings, platform_env):
    value = "pa55-" + os.urandom(8).hex()
    put = run_cli(platform_env, "secrets", "put", "ci/registry", "password", stdin=value)
    assert put.returncode == 0, put.stderr
    assert value not in put.stdout + put.stderr
    get = run_cli(platform_env, "secrets", "get", "ci/registry", "password")
    assert get.stdout.strip() == value
    # the write is audited, the value is nowhere on disk outside Vault's encrypted storage
    show = run_cli(platform_env, "audit", "show")
    assert "secret.write" in show.stdout and "secret/suite/ci/registry#password" in show.stdout
    for path in [*platform.dir("logs").glob("*.log"), platform.dir("audit", "audit.jsonl")]:
        assert value not in path.read_text(errors="replace"), path


def test_missing_secret_is_a_clear_error(platform_env):
    result = run_cli(platform_env, "secrets", "get", "does/not/exist", "k")
    assert result.returncode == 2
    assert "no secret at secret/suite/does/not/exist" in result.stderr


def test_worker_token_is_denied_outside_its_policy(platform: Settings):
    worker = vault.worker_client(platform)
    admin = vault.client(platform)
    vault.put_secret(admin, "app/db", "password", "x")
    # allowed: read suite secrets, encrypt (signing is for the signing identities only)
    assert vault.get_secret(worker, "app/db", "password") == "x"
    worker.secrets.transit.encrypt_data(name="suite-data", plaintext="aGVsbG8=")
    denied = [
        lambda: worker.secrets.kv.v2.create_or_update_secret(path="suite/app/db", secret={"a": 1}),
        lambda: worker.secrets.kv.v2.read_secret_version(path="other/thing",
                                                          raise_on_deleted_version=True),
        lambda: worker.secrets.transit.create_key(name="rogue"),
        lambda: worker.secrets.transit.sign_data(name="suite-data", hash_input="aGVsbG8="),
        lambda: worker.secrets.transit.sign_data(name="suite-sign", hash_input="aGVsbG8="),
        lambda: worker.sys.list_mounted_secrets_engines(),
        lambda: worker.sys.create_or_update_policy(name="x", policy='path "*" {}'),
        lambda: worker.auth.approle.generate_secret_id(role_name="suite-worker"),
    ]
    for call in denied:
        with pytest.raises(hvac.exceptions.Forbidden):
            call()


def test_workers_hold_approle_files_not_tokens(platform: Settings):
    root_token = vault._read_init(platform).get("root_token") or "revoked after bootstrap"
    admin_token = platform.dir("vault", "admin-token").read_text().strip()
    for i in (1, 2):
        rec = process.read_record(platform.dir("run"), f"worker-{i}")
        assert rec is not None and rec.alive()
        environ = Path(f"/proc/{rec.pid}/environ").read_bytes().decode(errors="replace")
        assert "SUITE_VAULT_ROLE_ID_FILE=" in environ
        assert root_token not in environ and admin_token not in environ


def test_port_in_use_is_an_error_naming_the_port(tmp_path: Path):
    settings = make_settings(tmp_path, workers=0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.port("registry")))
        sock.listen()
        with pytest.raises(PortInUse, match=f"port {settings.port('registry')} .* registry"):
            manager.up(settings, only=["registry"])
    manager.down(settings)


def test_crashed_service_shows_down_and_up_restarts_only_it(platform: Settings):
    rec = process.read_record(platform.dir("run"), "registry")
    assert rec is not None
    os.killpg(rec.pid, 9)
    deadline = time.monotonic() + 10
    while rec.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    states = {s.name: s.state for s in manager.status(platform)}
    assert states["registry"] == "down"
    assert states["vault"] == "healthy"
    result = manager.up(platform)
    assert result.started == ["registry"]
    assert {s.name: s.state for s in manager.status(platform)}["registry"] == "healthy"
