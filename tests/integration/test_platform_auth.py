"""Doors with locks (issue 13, item 1, the part that has landed): Prometheus, HAProxy's stats
page, the registry and MLflow answer 401 without the platform's credential; the registry's
``puller`` cannot push; Prometheus has no lifecycle API, so nobody can ``POST /-/quit`` it;
a second MLflow user reads a model the platform user made but cannot move its aliases or tags.
Against the real services of the session platform."""

from __future__ import annotations

import secrets
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from suite import prefect_http
from suite.platform import api_auth, credentials
from suite.platform.services.mlflow import GRANT
from suite.settings import Settings

pytestmark = pytest.mark.integration


def test_prometheus_answers_401_without_the_credential(platform: Settings) -> None:
    url = platform.url("prometheus")
    for path in ("/api/v1/query?query=up", "/graph", "/-/ready", "/api/v1/targets"):
        resp = httpx.get(f"{url}{path}", timeout=10)
        assert resp.status_code == 401, (path, resp.status_code)
    wrong = httpx.get(f"{url}/api/v1/query", params={"query": "up"}, auth=(credentials.USER, "x"),
                      timeout=10)
    assert wrong.status_code == 401
    resp = httpx.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=10,
                     headers=credentials.basic_auth(platform, "prometheus"))
    assert resp.status_code == 200 and resp.json()["status"] == "success"
    # it scrapes itself with the credential: its own target is up
    up = {r["metric"]["job"]: r["value"][1] for r in resp.json()["data"]["result"]}
    assert up.get("prometheus") == "1", up


def test_prometheus_cannot_be_shut_down_over_http(platform: Settings) -> None:
    url = platform.url("prometheus")
    auth = credentials.basic_auth(platform, "prometheus")
    assert httpx.post(f"{url}/-/quit", timeout=10).status_code == 401
    refused = httpx.post(f"{url}/-/quit", timeout=10, headers=auth)
    assert refused.status_code == 403 and "not enabled" in refused.text, refused.text
    assert httpx.get(f"{url}/-/ready", timeout=10, headers=auth).status_code == 200


def test_haproxy_stats_page_answers_401_without_the_credential(platform: Settings) -> None:
    url = f"http://{platform.host}:{platform.port('haproxy_metrics')}"
    assert httpx.get(f"{url}/stats", timeout=10).status_code == 401
    ok = httpx.get(f"{url}/stats", timeout=10, headers=credentials.basic_auth(platform, "haproxy"))
    assert ok.status_code == 200 and "Statistics Report" in ok.text
    # Prometheus' scrape of the router's own exporter is unchanged
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200


def test_registry_answers_401_without_credentials(platform: Settings) -> None:
    url = platform.url("registry")
    for method, path in (("GET", "/v2/"), ("GET", "/v2/_catalog"),
                         ("HEAD", "/v2/suite/base/manifests/bookworm"),
                         ("POST", "/v2/suite/x/blobs/uploads/")):
        resp = httpx.request(method, f"{url}{path}", timeout=10)
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.headers["www-authenticate"].startswith("Basic"), resp.headers
    assert httpx.get(f"{url}/v2/", auth=("builder", "x"), timeout=10).status_code == 401
    for role in credentials.REGISTRY_ROLES:
        ok = httpx.get(f"{url}/v2/", auth=credentials.registry_login(platform, role), timeout=10)
        assert ok.status_code == 200, (role, ok.status_code)


def test_registry_refuses_a_push_by_the_puller(platform: Settings) -> None:
    url = platform.url("registry")
    puller = credentials.registry_login(platform, "puller")
    upload = httpx.post(f"{url}/v2/suite/intruder/blobs/uploads/", auth=puller, timeout=10)
    assert upload.status_code == 403, upload.status_code
    manifest = httpx.put(f"{url}/v2/suite/intruder/manifests/latest", auth=puller, timeout=10,
                         content=b"{}", headers={"Content-Type":
                                                 "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 403, manifest.status_code
    # the builder may start the same upload (202: distribution took it)
    builder = credentials.registry_login(platform, "builder")
    started = httpx.post(f"{url}/v2/suite/intruder/blobs/uploads/", auth=builder, timeout=10)
    assert started.status_code == 202, started.status_code
    httpx.delete(f"{url}{started.headers['location'].split(url, 1)[-1]}", auth=builder,
                 timeout=10)


def test_the_registry_store_listens_on_no_tcp_port(platform: Settings) -> None:
    """distribution itself is reachable only on its unix socket in a 0700 directory."""
    import psutil

    from suite.platform import process

    rec = process.read_record(platform.dir("run"), "registry-store")
    assert rec is not None and rec.alive()
    proc = psutil.Process(rec.pid)
    family = {c.family for p in [proc, *proc.children(recursive=True)]
              for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert not family, family
    assert stat.S_IMODE(platform.dir("registry-store").stat().st_mode) == 0o700


def test_the_credentials_and_the_config_holding_them_are_private(platform: Settings) -> None:
    for service in credentials.SERVICES:
        if service == "postgres" and platform.database != "postgres":
            continue
        mode = credentials.path(platform, service).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, (service, oct(mode))
    assert stat.S_IMODE(credentials.path(platform, "haproxy").parent.stat().st_mode) == 0o700
    for held in (platform.dir("haproxy", "haproxy.cfg"), platform.dir("prometheus", "web.yml"),
                 platform.dir("registry", "gate.cfg"), platform.dir("engine", "auth.json"),
                 platform.dir("mlflow", "basic_auth.ini")):
        assert stat.S_IMODE(held.stat().st_mode) == 0o600, held


def test_prefect_api_answers_401_without_the_auth_string(platform: Settings) -> None:
    api = platform.prefect_api_url
    for method, path in (("GET", "/work_pools/suite"), ("POST", "/flow_runs/filter"),
                         ("POST", "/deployments/filter")):
        resp = httpx.request(method, f"{api}{path}", json={} if method == "POST" else None,
                             timeout=10)
        assert resp.status_code == 401, (path, resp.status_code)
    user, secret = api_auth.prefect_auth(platform).get_secret_value().split(":", 1)
    assert httpx.get(f"{api}/work_pools/suite", auth=(user, "x"), timeout=10).status_code == 401
    ok = httpx.get(f"{api}/work_pools/suite", auth=(user, secret), timeout=10)
    assert ok.status_code == 200 and ok.json()["name"] == "suite"
    # the suite's own calls send it; the health probe stays open (Prefect exempts it)
    assert prefect_http.request(api, "POST", "/flow_runs/filter", json={}).status_code == 200
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    # the string is kept in Vault only: not in the platform's logs, nor its saved config
    for held in (*platform.dir("logs").glob("*.log"), platform.dir("platform.json")):
        assert secret not in held.read_text(errors="replace"), held


ALIAS = "/api/2.0/mlflow/registered-models/alias"


def test_mlflow_answers_401_without_a_user(platform: Settings) -> None:
    url = platform.mlflow_uri
    for method, path, body in (
        ("GET", "/api/2.0/mlflow/registered-models/search", None),
        ("POST", ALIAS, {"name": "any", "alias": "champion", "version": "1"}),
        ("POST", "/api/2.0/mlflow/users/create", {"username": "eve", "password": "e" * 16}),
        ("GET", "/signup", None),
        ("GET", "/ajax-api/2.0/mlflow/registered-models/search", None),
    ):
        resp = httpx.request(method, f"{url}{path}", json=body, timeout=10)
        assert resp.status_code == 401, (path, resp.status_code)
    # a person opening the UI gets the browser's basic-auth prompt
    ui = httpx.get(url, timeout=10)
    assert ui.status_code == 401 and ui.headers["www-authenticate"] == 'Basic realm="mlflow"'
    name, secret = credentials.mlflow_login(platform)
    search = f"{url}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search, auth=(name, "x" * 16), timeout=10).status_code == 401
    assert httpx.get(search, auth=(name, secret), timeout=10).status_code == 200
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    # the platform user is no admin: it cannot make users
    made = httpx.post(f"{url}/api/2.0/mlflow/users/create", auth=(name, secret), timeout=10,
                      json={"username": "eve", "password": "e" * 16})
    assert made.status_code == 403
    # neither password is in the platform's logs
    admin_secret = credentials.mlflow_admin(platform)[1]
    for held in platform.dir("logs").glob("*.log"):
        text = held.read_text(errors="replace")
        assert secret not in text and admin_secret not in text, held


def _model_with_champion(platform: Settings, name: str, tmp: Path) -> str:
    """A registered model the platform user makes (as the train stage does), champion v1."""
    mc = MlflowClient(platform.mlflow_uri, registry_uri=platform.mlflow_uri)
    exp = mc.get_experiment_by_name("auth-door") or mc.get_experiment(
        mc.create_experiment("auth-door"))
    run = mc.create_run(exp.experiment_id)
    (tmp / "model").mkdir()
    (tmp / "model" / "MLmodel").write_text("artifact_path: model\n")
    mc.log_artifacts(run.info.run_id, str(tmp / "model"), "model")
    mc.set_terminated(run.info.run_id)
    mc.create_registered_model(name)
    version = mc.create_model_version(name, f"runs:/{run.info.run_id}/model",
                                      run_id=run.info.run_id).version
    mc.set_registered_model_alias(name, "champion", version)
    return str(version)


def test_a_second_mlflow_user_reads_a_model_but_cannot_move_its_aliases(
        platform: Settings, tmp_path: Path) -> None:
    url = platform.mlflow_uri
    name = f"auth-door-{secrets.token_hex(3)}"
    version = _model_with_champion(platform, name, tmp_path)
    reader, secret = f"reader-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    made = httpx.post(f"{url}/api/2.0/mlflow/users/create", json={
        "username": reader, "password": secret}, auth=credentials.mlflow_admin(platform),
        timeout=10)
    assert made.status_code == 200, made.text
    with httpx.Client(base_url=url, auth=(reader, secret), timeout=10) as other:
        got = other.get(ALIAS, params={"name": name, "alias": "champion"})
        assert got.status_code == 200 and got.json()["model_version"]["version"] == version
        refused = {
            "move champion": other.post(ALIAS, json={"name": name, "alias": "champion",
                                                      "version": version}),
            "drop champion": other.delete(ALIAS, params={"name": name, "alias": "champion"}),
            "forge a history tag": other.post("/api/2.0/mlflow/model-versions/set-tag", json={
                "name": name, "version": version, "key": "champion.history.1",
                "value": "forged"}),
            "grant itself": other.post(GRANT, json={
                "username": reader, "resource_type": "registered_model", "resource_id": name,
                "permission": "MANAGE"}),
            "make a user": other.post("/api/2.0/mlflow/users/create", json={
                "username": f"{reader}-2", "password": secret}),
        }
        assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 403)
    # the platform user still moves it
    mc = MlflowClient(url, registry_uri=url)
    mc.set_registered_model_alias(name, "challenger", version)
    model = mc.get_registered_model(name)
    assert model.aliases == {"champion": version, "challenger": version}
    assert "champion.history.1" not in mc.get_model_version(name, version).tags


def test_the_cli_logs_itself_in_to_mlflow(platform: Settings,
                                          platform_env: dict[str, str]) -> None:
    """An operator's shell holds no MLflow login: `suite model history` logs in as the platform
    user when it reaches its own platform's MLflow (credentials.ensure_mlflow_login)."""
    name = f"auth-cli-{secrets.token_hex(3)}"
    MlflowClient(platform.mlflow_uri, registry_uri=platform.mlflow_uri
                 ).create_registered_model(name)
    env = {k: v for k, v in platform_env.items() if not k.startswith("MLFLOW_TRACKING_")}
    out = subprocess.run([sys.executable, "-m", "suite.cli", "model", "history", name], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no champion changes recorded" in out.stdout, out.stdout
