"""Vault (OpenBao) access: bootstrap with the root token once, everyday clients without it.

Files under ``<home>/vault`` (all mode 0600):
  init.json       init material from the first start (unseal key, root token)
  admin-token     token with the ``suite-admin`` policy, for the CLI (secrets, audit)
  worker-role-id  AppRole role id of ``suite-worker``
  worker-secret-id  AppRole secret id of ``suite-worker``

Workers get only the two AppRole files (paths in their environment) and log in themselves: they
never see the root or admin token. No function here logs or raises a secret value.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from suite.errors import ConfigError, ServiceUnavailable, VaultError
from suite.platform.files import atomic_write
from suite.settings import Settings

SIGN_KEY = "suite-sign"
DATA_KEY = "suite-data"
WORKER_ROLE = "suite-worker"
KV_MOUNT = "secret"
KV_PREFIX = "suite"

SERVICE_POLICY_PREFIX = "suite-service-"

WORKER_POLICY = f"""
# suite-worker: what a Prefect worker (and the flows it runs) may do, nothing more.
path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{ capabilities = ["read"] }}
path "transit/sign/{SIGN_KEY}" {{ capabilities = ["update"] }}
path "transit/verify/{SIGN_KEY}" {{ capabilities = ["update"] }}
path "transit/encrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/decrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
"""

ADMIN_POLICY = f"""
# suite-admin: the platform operator's everyday token (CLI), instead of the root token.
path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = ["create", "read", "update", "patch", "delete"]
}}
path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{ capabilities = ["read", "list", "delete"] }}
path "transit/sign/{SIGN_KEY}" {{ capabilities = ["update"] }}
path "transit/verify/{SIGN_KEY}" {{ capabilities = ["update"] }}
path "transit/encrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/decrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/keys/{SIGN_KEY}" {{ capabilities = ["read"] }}
path "auth/approle/role/{WORKER_ROLE}/role-id" {{ capabilities = ["read"] }}
path "auth/approle/role/{WORKER_ROLE}/secret-id" {{ capabilities = ["update"] }}
path "sys/policies/acl/{SERVICE_POLICY_PREFIX}*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
path "sys/policy/{SERVICE_POLICY_PREFIX}*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
"""


def vault_dir(settings: Settings) -> Path:
    return settings.dir("vault")


def write_private(path: Path, text: str) -> None:
    atomic_write(path, text, mode=0o600)


def _client(settings: Settings, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=settings.vault_addr, token=token, timeout=30)


def health(settings: Settings) -> dict[str, Any] | None:
    try:
        resp = requests.get(
            settings.vault_addr + "/v1/sys/health",
            params={"standbyok": "true", "sealedcode": "200", "uninitcode": "200"},
            timeout=2,
        )
        result: dict[str, Any] = resp.json()
        return result
    except (requests.RequestException, ValueError):
        return None


def _read_init(settings: Settings) -> dict[str, Any]:
    path = vault_dir(settings) / "init.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except FileNotFoundError as exc:
        raise VaultError(
            f"Vault is initialised but {path} is missing: the unseal key is lost. Restore the "
            f"file from backup, or remove {vault_dir(settings)} to start over (all secrets lost)"
        ) from exc


def init_and_unseal(settings: Settings) -> None:
    """Initialise once (1 key share) and unseal; safe to call on every start."""
    state = health(settings)
    if state is None:
        raise ServiceUnavailable(f"Vault at {settings.vault_addr} does not answer")
    client = _client(settings)
    if not state.get("initialized"):
        path = vault_dir(settings) / "init.json"
        if path.exists():
            raise VaultError(
                f"Vault storage is empty but {path} exists from an earlier install; move it "
                f"away before initialising a new Vault"
            )
        result = client.sys.initialize(secret_shares=1, secret_threshold=1)
        write_private(
            path,
            json.dumps(
                {"keys_b64": result["keys_base64"], "root_token": result["root_token"]},
                indent=2,
            ),
        )
        state = health(settings) or {}
    if state.get("sealed", True):
        material = _read_init(settings)
        client.sys.submit_unseal_key(key=material["keys_b64"][0])
        if client.sys.is_sealed():
            raise VaultError("Vault stayed sealed after submitting the unseal key from init.json")
    _wait_active(settings)


def _wait_active(settings: Settings, timeout: float = 30.0) -> None:
    """After unseal, raft elects this single node leader; requests fail until it is active."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = health(settings) or {}
        if state.get("initialized") and not state.get("sealed") and not state.get("standby"):
            return
        time.sleep(0.2)
    raise ServiceUnavailable(
        f"Vault at {settings.vault_addr} unsealed but did not become active within {timeout:.0f}s"
    )


def root_client(settings: Settings) -> hvac.Client:
    return _client(settings, _read_init(settings)["root_token"])


def bootstrap(settings: Settings) -> None:
    """Mounts, keys, policies, AppRole and the admin token (idempotent)."""
    client = root_client(settings)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{KV_MOUNT}/" not in mounts:
        client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    if "transit/" not in mounts:
        client.sys.enable_secrets_engine("transit", path="transit")
    existing = client.secrets.transit.list_keys().get("data", {}).get("keys", []) if _has_keys(
        client
    ) else []
    if SIGN_KEY not in existing:
        client.secrets.transit.create_key(name=SIGN_KEY, key_type="ed25519")
    if DATA_KEY not in existing:
        client.secrets.transit.create_key(name=DATA_KEY, key_type="aes256-gcm96")
    client.sys.create_or_update_policy(name=WORKER_ROLE, policy=WORKER_POLICY)
    client.sys.create_or_update_policy(name="suite-admin", policy=ADMIN_POLICY)
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.auth.approle.create_or_update_approle(
        role_name=WORKER_ROLE,
        token_policies=[WORKER_ROLE],
        token_ttl="1h",  # noqa: S106 - a duration, not a secret
        token_max_ttl="24h",  # noqa: S106
        secret_id_ttl="0",  # noqa: S106
    )
    vdir = vault_dir(settings)
    role_id = client.auth.approle.read_role_id(role_name=WORKER_ROLE)["data"]["role_id"]
    write_private(vdir / "worker-role-id", role_id)
    if not (vdir / "worker-secret-id").exists():
        secret = client.auth.approle.generate_secret_id(role_name=WORKER_ROLE)
        write_private(vdir / "worker-secret-id", secret["data"]["secret_id"])
    if not _token_valid(settings, vdir / "admin-token"):
        token = client.auth.token.create(
            policies=["suite-admin"], period="768h", renewable=True, display_name="suite-admin"
        )
        write_private(vdir / "admin-token", token["auth"]["client_token"])


def _has_keys(client: hvac.Client) -> bool:
    try:
        client.secrets.transit.list_keys()
        return True
    except hvac.exceptions.InvalidPath:
        return False


def _token_valid(settings: Settings, path: Path) -> bool:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return False
    try:
        return bool(_client(settings, token).is_authenticated())
    except (requests.RequestException, hvac.exceptions.VaultError):
        return False


def approle_login(settings: Settings, role_id_file: Path, secret_id_file: Path) -> hvac.Client:
    try:
        role_id = role_id_file.read_text().strip()
        secret_id = secret_id_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read AppRole credentials ({role_id_file}, {secret_id_file}): {exc.strerror}; "
            f"run `suite up` to create them"
        ) from exc
    client = _client(settings)
    try:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise VaultError(f"AppRole login as {WORKER_ROLE} failed: {type(exc).__name__}") from exc
    return client


def worker_client(settings: Settings) -> hvac.Client:
    vdir = vault_dir(settings)
    return approle_login(settings, vdir / "worker-role-id", vdir / "worker-secret-id")


def client(settings: Settings) -> hvac.Client:
    """The everyday client: AppRole when running as a worker, else the admin token."""
    role = settings.vault_role_id_file
    secret = settings.vault_secret_id_file
    if role and secret:
        return approle_login(settings, role, secret)
    token_path = vault_dir(settings) / "admin-token"
    try:
        token = token_path.read_text().strip()
    except FileNotFoundError as exc:
        raise ServiceUnavailable(
            f"no Vault admin token at {token_path}: start the platform with `suite up`"
        ) from exc
    return _client(settings, token)


def _kv_path(path: str) -> str:
    clean = path.strip("/")
    if not clean or ".." in clean.split("/"):
        raise ConfigError(f"secret path {path!r} is invalid (expected e.g. 'webhook/github')")
    return f"{KV_PREFIX}/{clean}"


def put_secret(vault: hvac.Client, path: str, key: str, value: str) -> int:
    """Set one key of a KV v2 secret, keeping its other keys; returns the new version."""
    kv = vault.secrets.kv.v2
    full = _kv_path(path)
    try:
        current = kv.read_secret_version(
            path=full, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
        data = dict(current["data"]["data"])
    except hvac.exceptions.InvalidPath:
        data = {}
    data[key] = value
    try:
        result = kv.create_or_update_secret(path=full, secret=data, mount_point=KV_MOUNT)
    except hvac.exceptions.VaultError as exc:
        raise VaultError(
            f"writing secret {full!r} key {key!r} failed: {type(exc).__name__}"
        ) from exc
    return int(result["data"]["version"])


def get_secret(vault: hvac.Client, path: str, key: str) -> str:
    full = _kv_path(path)
    try:
        current = vault.secrets.kv.v2.read_secret_version(
            path=full, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath as exc:
        raise ConfigError(
            f"no secret at {KV_MOUNT}/{full}; set it with `suite secrets put`"
        ) from exc
    except hvac.exceptions.Forbidden as exc:
        raise VaultError(f"permission denied reading {KV_MOUNT}/{full}") from exc
    data = current["data"]["data"]
    if key not in data:
        raise ConfigError(
            f"secret {KV_MOUNT}/{full} has no key {key!r} (keys: {', '.join(sorted(data))})"
        )
    return str(data[key])


def service_policy(service: str) -> str:
    """What a release of ``service`` may read: that service's secrets, nothing else."""
    return (f'# {SERVICE_POLICY_PREFIX}{service}: the secrets of service {service}\n'
            f'path "{KV_MOUNT}/data/{KV_PREFIX}/services/{service}/*" '
            f'{{ capabilities = ["read"] }}\n')


def put_service_policy(vault: hvac.Client, service: str) -> str:
    name = f"{SERVICE_POLICY_PREFIX}{service}"
    try:
        vault.sys.create_or_update_policy(name=name, policy=service_policy(service))
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"writing Vault policy {name!r} failed: {type(exc).__name__}") from exc
    return name


def delete_service_policy(vault: hvac.Client, service: str) -> None:
    try:
        vault.sys.delete_policy(name=f"{SERVICE_POLICY_PREFIX}{service}")
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"deleting the Vault policy of {service!r} failed: "
                         f"{type(exc).__name__}") from exc
