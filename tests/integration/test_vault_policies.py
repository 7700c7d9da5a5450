"""Least privilege in Vault, on the session platform: each signing key is usable only by its
identity, secret-ids expire and rotate, the root token is gone, Vault audits every request."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import hvac
import hvac.exceptions
import pytest

from suite import audit, vault
from suite.errors import ConfigError, VaultError
from suite.settings import Settings
from suite.vault_policy import (
    LEGACY_SIGN_KEY,
    RELEASE_TOKEN_ROLE,
    SECRET_ID_NUM_USES,
    SIGN_KEYS,
    SIGNERS,
    Purpose,
)
from tasks.targets.base import Workload
from tasks.targets.local import EngineRunner, vault_reader

pytestmark = pytest.mark.integration
PAYLOAD = "aGVsbG8="  # base64 "hello"


def _sign(client: hvac.Client, key: str) -> str:
    resp = client.secrets.transit.sign_data(name=key, hash_input=PAYLOAD)
    return str(resp["data"]["signature"])


@pytest.mark.parametrize("purpose", list(Purpose))
def test_each_signing_key_is_usable_only_by_its_identity(platform: Settings, purpose: Purpose):
    signer = SIGNERS[purpose]
    own = vault.signer_client(platform, purpose)
    signature = _sign(own, signer.key)
    for key in (*SIGN_KEYS, LEGACY_SIGN_KEY):
        if key != signer.key:
            with pytest.raises(hvac.exceptions.Forbidden):
                _sign(own, key)
    # nobody else signs with it: not the workers' identity, not the operator's admin token,
    # not the other signing identities; everybody can verify
    others = [vault.worker_client(platform), vault.client(platform),
              *(vault.signer_client(platform, p) for p in Purpose if p != purpose)]
    for other in others:
        with pytest.raises(hvac.exceptions.Forbidden):
            _sign(other, signer.key)
        assert other.secrets.transit.verify_signed_data(
            name=signer.key, hash_input=PAYLOAD, signature=signature)["data"]["valid"]


def test_the_root_token_is_revoked_and_the_admin_token_bootstraps_again(platform: Settings):
    material = json.loads(platform.dir("vault", "init.json").read_text())
    assert "root_token" not in material and material["root_token_revoked"]
    assert material["keys_b64"]  # the unseal key stays: the platform still starts
    vault.bootstrap(platform)  # what every later `suite up` does, without the root token
    assert vault.client(platform).is_authenticated()


def _login(platform: Settings, role_id: str, secret_id: str) -> bool:
    client = hvac.Client(url=platform.vault_addr)
    try:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    except hvac.exceptions.VaultError:
        return False
    return True


def test_secret_ids_expire_have_a_use_limit_and_rotate_on_each_bootstrap(platform: Settings):
    vdir = vault.vault_dir(platform)
    role_id = (vdir / "audit-role-id").read_text()
    first = (vdir / "audit-secret-id").read_text()
    admin = vault.client(platform)
    info = admin.auth.approle.read_secret_id(role_name="suite-audit", secret_id=first)["data"]
    assert info["secret_id_num_uses"] == SECRET_ID_NUM_USES
    assert 0 < info["secret_id_ttl"] <= 720 * 3600
    vault.bootstrap(platform)
    second = (vdir / "audit-secret-id").read_text()
    vault.bootstrap(platform)
    third = (vdir / "audit-secret-id").read_text()
    assert len({first, second, third}) == 3
    # the newest and the one before it log in (a process may have read the file just now)
    assert _login(platform, role_id, third) and _login(platform, role_id, second)
    assert not _login(platform, role_id, first)


def test_vault_audit_device_records_requests_without_secret_values(platform: Settings):
    value = "audited-" + os.urandom(8).hex()
    vault.put_secret(vault.client(platform), "audit-device/probe", "k", value)
    log = platform.dir("vault", "audit.log")
    assert log.stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    paths = [json.loads(line).get("request", {}).get("path") for line in text.splitlines()]
    assert "secret/data/suite/audit-device/probe" in paths
    assert value not in text  # request bodies are HMAC-ed


def test_audit_records_are_signed_by_the_audit_key(platform: Settings):
    record = audit.append(platform, action="test.vault-policies", subject="audit key")
    assert record.signature.startswith("transit:suite-audit:vault:v")
    assert audit.verify(platform).ok


LOGGER = """
import sys
from suite import vault
from suite.settings import load
from suite.vault_policy import Purpose
for _ in range(int(sys.argv[1])):
    vault._logins.clear()  # a new login each time, as separate processes make
    vault.signer_client(load(), Purpose.AUDIT).auth.token.lookup_self()
"""


def test_logins_at_once_with_one_use_limited_secret_id_all_succeed(platform: Settings,
                                                                    platform_env) -> None:
    """Processes starting together (workers, flow runs) log in with the same secret-id at once:
    each login spends one of its uses, and OpenBao fails one of two concurrent spends with a
    storage conflict (500 "transaction commit failed"), which the login retries."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", LOGGER, "10"], env=platform_env,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in results), [err[-600:] for _, err in results]


# -- a release reads only its own service's secrets (issue 13 item 5) ---------------------------

def _worker_settings(platform: Settings) -> Settings:
    """What a flow run has: the worker's AppRole files, no token."""
    vdir = vault.vault_dir(platform)
    return replace(platform, vault_role_id_file=vdir / "worker-role-id",
                   vault_secret_id_file=vdir / "worker-secret-id")


@pytest.fixture(scope="module")
def two_services(platform: Settings) -> tuple[str, str]:
    """Services pa and pb as onboarding leaves them in Vault (each its read policy), each with a
    secret of its own."""
    admin = vault.client(platform)
    for name in ("pa", "pb"):
        vault.put_service_policy(admin, name)
        vault.put_secret(admin, f"services/{name}/db", "password", f"{name}-secret")
    return "pa", "pb"


def test_the_workers_own_token_reads_no_service_secrets(platform: Settings,
                                                        two_services: tuple[str, str]):
    worker = vault.worker_client(platform)
    for name in two_services:
        with pytest.raises(VaultError, match="permission denied"):
            vault.get_secret(worker, f"services/{name}/db", "password")
    # the rest of secret/suite/ stays readable (the webhook's secrets, Prefect's auth string)
    vault.put_secret(vault.client(platform), "app/db", "password", "x")
    assert vault.get_secret(worker, "app/db", "password") == "x"
    # it mints nothing but suite-service-* tokens, under the release role only
    for policies in (["suite-worker"], ["default"], ["root"]):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            worker.auth.token.create(role_name=RELEASE_TOKEN_ROLE, policies=policies)
    with pytest.raises(hvac.exceptions.Forbidden):
        worker.auth.token.create(policies=["suite-service-pb"])


def test_a_token_minted_for_one_service_reads_its_secrets_and_no_other(
        platform: Settings, two_services: tuple[str, str]):
    a, b = two_services
    # what the role makes of a request for a long, renewable token with the default policy
    asked = vault.worker_client(platform).auth.token.create(
        role_name=RELEASE_TOKEN_ROLE, policies=[f"suite-service-{a}"], ttl="24h")["auth"]
    assert asked["policies"] == [f"suite-service-{a}"] and not asked["renewable"]
    assert 0 < asked["lease_duration"] <= 300
    minted = vault.service_client(vault.worker_client(platform), a, uses=3)
    assert vault.get_secret(minted, f"services/{a}/db", "password") == f"{a}-secret"
    with pytest.raises(VaultError, match="permission denied"):
        vault.get_secret(minted, f"services/{b}/db", "password")


def test_a_read_token_is_spent_by_its_one_read(platform: Settings,
                                               two_services: tuple[str, str]):
    a, _ = two_services
    minted = vault.service_client(vault.worker_client(platform), a)
    assert vault.get_secret(minted, f"services/{a}/db", "password") == f"{a}-secret"
    with pytest.raises(VaultError):
        vault.get_secret(minted, f"services/{a}/db", "password")


def test_the_local_targets_environment_holds_only_its_services_secrets(
        platform: Settings, two_services: tuple[str, str]):
    a, b = two_services
    runner = EngineRunner(_worker_settings(platform), vault_reader(_worker_settings(platform)))
    own = Workload(service=a, release="r1", version="v", image="i",
                   secrets=(("DB_PASSWORD", f"services/{a}/db#password"),))
    assert runner._environment(own, "canary")["DB_PASSWORD"] == f"{a}-secret"
    # the operator's admin token (a release run from the CLI) mints the same way
    assert vault_reader(platform)(a, f"services/{a}/db", "password") == f"{a}-secret"
    # a workload whose ref names another service's path is refused before Vault is asked
    stolen = replace(own, secrets=(("DB_PASSWORD", f"services/{b}/db#password"),))
    with pytest.raises(ConfigError, match=f"not one of service '{a}'"):
        runner._environment(stolen, "canary")
    sideways = replace(own, secrets=(("X", f"services/{a}/../{b}/db#password"),))
    with pytest.raises(ConfigError):
        runner._environment(sideways, "canary")
    # and the service's own read token is refused the other path by Vault itself
    with pytest.raises(VaultError, match="permission denied"):
        vault.get_secret(vault.service_client(vault.worker_client(platform), a),
                         f"services/{b}/db", "password")


def test_suite_up_writes_the_read_policy_of_every_registered_service(platform: Settings):
    """A service onboarded before its read policy existed (or whose policy was lost)."""
    from suite.services.registry import Registration

    admin = vault.client(platform)
    record = platform.dir("services") / "pold.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(Registration("pold", "/nowhere", "main", "d", "h", "pold.local",
                                   "now").to_json())
    try:
        vault.delete_service_policy(admin, "pold")
        with pytest.raises(hvac.exceptions.InvalidPath):
            admin.sys.read_policy(name="suite-service-pold")
        vault.bootstrap(platform)
        text = admin.sys.read_policy(name="suite-service-pold")["data"]["rules"]
        assert text == vault.service_policy("pold")
    finally:
        record.unlink()
        vault.delete_service_policy(admin, "pold")
