"""Vault (OpenBao) access: bootstrap once with the root token, then revoke it; everyday clients
never hold it. Who may do what is in :mod:`suite.vault_policy`.

Files under ``<home>/vault`` (all mode 0600):
  init.json         init material from the first start (unseal key; the root token until the
                    first bootstrap has used and revoked it)
  admin-token       token with the ``suite-admin`` policy, for the CLI and later bootstraps
  worker-role-id    AppRole role id of ``suite-worker`` (and ``worker-secret-id``)
  audit-*, build-*, train-*  role and secret ids of the signing AppRoles ``suite-audit``,
                    ``suite-builder``, ``suite-trainer`` (one transit key each)
  audit.log         Vault's own file audit device (every request, secrets HMAC-ed)

Secret-ids live :data:`~suite.vault_policy.SECRET_ID_TTL` for at most
:data:`~suite.vault_policy.SECRET_ID_NUM_USES` logins and are issued afresh by every bootstrap
(every `suite up`). Workers get only the AppRole files (paths, never a token) and log in
themselves. No function here logs or raises a secret value.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from suite.errors import ConfigError, ServiceUnavailable, VaultError
from suite.platform.files import atomic_write
from suite.settings import Settings
from suite.vault_policy import (
    ADMIN_POLICY_NAME,
    DATA_KEY,
    KV_MOUNT,
    KV_PREFIX,
    LEGACY_SIGN_KEY,
    RELEASE_TOKEN_MAX_TTL,
    RELEASE_TOKEN_ROLE,
    RELEASE_TOKEN_TTL,
    ROLES,
    SECRET_ID_NUM_USES,
    SECRET_ID_TTL,
    SERVICE_POLICY_PREFIX,
    SIGN_KEYS,
    SIGNERS,
    WAIVER_KEY,
    WORKER_ROLE,
    Purpose,
    policies,
)

__all__ = ["DATA_KEY", "KV_MOUNT", "KV_PREFIX", "LEGACY_SIGN_KEY", "SERVICE_POLICY_PREFIX",
           "WORKER_ROLE", "Purpose"]

#: a cached AppRole login is used for at most this long (its token lives 1 h)
LOGIN_REUSE_SECONDS = 45 * 60
GENERATE_ROOT_HINT = (
    "the root token was revoked after bootstrap: make a new one with `bao operator generate-root` "
    "(docs/security.md), put it in init.json as \"root_token\", and run `suite up` again (it "
    "uses it once and revokes it)"
)


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
    """The bootstrap's client: the root token while init.json still holds it (the first start),
    then the ``suite-admin`` token, whose policy covers every later bootstrap."""
    root = _read_init(settings).get("root_token")
    if root:
        return _client(settings, str(root))
    admin = vault_dir(settings) / "admin-token"
    if not _token_valid(settings, admin):
        raise VaultError(f"no valid Vault admin token at {admin} and no root token: "
                         f"{GENERATE_ROOT_HINT}")
    return _client(settings, admin.read_text().strip())


def bootstrap(settings: Settings) -> None:
    """Mounts, keys, policies, AppRoles with fresh secret-ids and the admin token (idempotent),
    then the root token is revoked: every later bootstrap runs as ``suite-admin``."""
    client = root_client(settings)
    as_root = bool(_read_init(settings).get("root_token"))
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{KV_MOUNT}/" not in mounts:
        client.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    if "transit/" not in mounts:
        client.sys.enable_secrets_engine("transit", path="transit")
    existing = client.secrets.transit.list_keys().get("data", {}).get("keys", []) if _has_keys(
        client
    ) else []
    # the legacy key too, on a fresh Vault as well: nobody may sign with it, so a bare
    # (pre-split) signature there is simply invalid instead of naming a missing key
    for key in (*SIGN_KEYS, WAIVER_KEY, LEGACY_SIGN_KEY):
        if key not in existing:
            client.secrets.transit.create_key(name=key, key_type="ed25519")
    if DATA_KEY not in existing:
        client.secrets.transit.create_key(name=DATA_KEY, key_type="aes256-gcm96")
    for name, text in policies().items():
        client.sys.create_or_update_policy(name=name, policy=text)
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    vdir = vault_dir(settings)
    for role, stem in ROLES:
        _approle(client, vdir, role, stem)
    _release_token_role(client)
    # services onboarded before their read policy existed (or whose policy was lost) release
    from suite.services.registry import Registry

    for registration in Registry(settings).all():
        put_service_policy(client, registration.service)
    from suite import people  # userpass, the approval identity tokens, TOTP (issue 13 item 2)

    people.bootstrap(client)
    admin = vdir / "admin-token"
    if _token_valid(settings, admin):
        _client(settings, admin.read_text().strip()).auth.token.renew_self()
    else:
        # an orphan: revoking the root token below revokes the root's children too
        token = client.auth.token.create(
            policies=[ADMIN_POLICY_NAME], period="768h", renewable=True,
            display_name=ADMIN_POLICY_NAME, no_parent=True,
        )
        write_private(admin, token["auth"]["client_token"])
    if as_root:
        _revoke_root(settings, client)


def _approle(client: hvac.Client, vdir: Path, role: str, stem: str) -> None:
    """The role (its policy of the same name), its role-id file and a fresh secret-id: the new
    one is written before the old ones go, and the one before it stays valid, so a process that
    read the file a moment ago still logs in."""
    client.auth.approle.create_or_update_approle(
        role_name=role,
        token_policies=[role],
        token_ttl="1h",  # noqa: S106 - a duration, not a secret
        token_max_ttl="24h",  # noqa: S106
        secret_id_ttl=SECRET_ID_TTL,
        secret_id_num_uses=SECRET_ID_NUM_USES,
    )
    role_id = client.auth.approle.read_role_id(role_name=role)["data"]["role_id"]
    write_private(vdir / f"{stem}-role-id", role_id)
    secret = client.auth.approle.generate_secret_id(role_name=role)
    write_private(vdir / f"{stem}-secret-id", secret["data"]["secret_id"])
    try:
        accessors = client.auth.approle.list_secret_id_accessors(role_name=role)["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return
    created: list[tuple[str, str]] = []
    for accessor in accessors:
        try:
            info = client.auth.approle.read_secret_id_accessor(
                role_name=role, secret_id_accessor=accessor)["data"]
        except hvac.exceptions.InvalidPath:  # expired meanwhile
            continue
        created.append((_sortable(str(info.get("creation_time", ""))), accessor))
    for _, accessor in sorted(created, reverse=True)[2:]:
        client.auth.approle.destroy_secret_id_accessor(role_name=role,
                                                       secret_id_accessor=accessor)


def _release_token_role(client: hvac.Client) -> None:
    """The token role a release mints its service's read token under: only ``suite-service-*``
    policies (never root, default or the worker's own), not renewable, minutes long."""
    resp = client.adapter.post(f"/v1/auth/token/roles/{RELEASE_TOKEN_ROLE}", json={
        "allowed_policies_glob": [f"{SERVICE_POLICY_PREFIX}*"],
        "disallowed_policies": ["root", "default"],
        "token_no_default_policy": True, "renewable": False, "orphan": False,
        "token_type": "service", "token_ttl": RELEASE_TOKEN_TTL,
        "token_explicit_max_ttl": RELEASE_TOKEN_MAX_TTL,
    })
    if getattr(resp, "status_code", 204) not in (200, 204):
        raise VaultError(f"writing the token role {RELEASE_TOKEN_ROLE!r} failed: "
                         f"HTTP {resp.status_code}")


def _sortable(stamp: str) -> str:
    """An RFC 3339 time whose fraction has 9 digits, so two compare as strings."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp
    digits = "".join(ch for ch in rest if ch.isdigit())
    return f"{head}.{digits[:9]:0<9}{rest[len(digits):]}"


def _revoke_root(settings: Settings, client: hvac.Client) -> None:
    """Revoke the root token and drop it from init.json (the unseal key stays)."""
    client.auth.token.revoke_self()
    material = _read_init(settings)
    material.pop("root_token", None)
    material["root_token_revoked"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_private(vault_dir(settings) / "init.json", json.dumps(material, indent=2))


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
        # False only when Vault says the token is not valid (403): a Vault that does not
        # answer in time (a loaded host) must not read as "the admin token is gone"
        return bool(_client(settings, token).is_authenticated())
    except (requests.RequestException, hvac.exceptions.VaultError) as exc:
        raise ServiceUnavailable(
            f"Vault at {settings.vault_addr} did not answer while checking the token in {path}: "
            f"{type(exc).__name__}: {exc}; the token was not changed — run the command again "
            f"(`suite status` shows Vault's health)") from exc


_logins: dict[tuple[str, str, str], tuple[hvac.Client, float]] = {}
_logins_lock = threading.Lock()
#: logins tried when Vault fails one with a storage conflict (500), waits doubling from 50 ms
LOGIN_ATTEMPTS = 6


def approle_login(settings: Settings, role_id_file: Path, secret_id_file: Path,
                  role: str = WORKER_ROLE) -> hvac.Client:
    """A client logged in with the AppRole files; one login per process and secret-id is reused
    for :data:`LOGIN_REUSE_SECONDS` (each login spends one of the secret-id's uses)."""
    try:
        role_id = role_id_file.read_text().strip()
        secret_id = secret_id_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read AppRole credentials ({role_id_file}, {secret_id_file}): {exc.strerror}; "
            f"run `suite up` to create them"
        ) from exc
    cache_key = (settings.vault_addr, role_id, secret_id)
    with _logins_lock:
        cached = _logins.get(cache_key)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        client = _client(settings)
        for attempt in range(LOGIN_ATTEMPTS):
            try:
                client.auth.approle.login(role_id=role_id, secret_id=secret_id)
                break
            except hvac.exceptions.InternalServerError as exc:
                # a secret-id with a use limit: two logins at once (two processes starting
                # together) both spend a use, and OpenBao fails one with "transaction commit
                # failed" instead of serialising them — a conflict, retried after a short wait
                if attempt + 1 == LOGIN_ATTEMPTS:
                    raise VaultError(f"AppRole login as {role} failed {LOGIN_ATTEMPTS} times: "
                                     f"Vault answered {exc}") from exc
                time.sleep(0.05 * 2 ** attempt * (1 + secrets.randbelow(1000) / 1000))
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                raise VaultError(f"AppRole login as {role} failed: {type(exc).__name__}; if the "
                                 f"secret-id expired or is used up, `suite up` issues a new one"
                                 ) from exc
        _logins[cache_key] = (client, time.monotonic() + LOGIN_REUSE_SECONDS)
        return client


def worker_client(settings: Settings) -> hvac.Client:
    vdir = vault_dir(settings)
    return approle_login(settings, vdir / "worker-role-id", vdir / "worker-secret-id")


def signer_client(settings: Settings, purpose: Purpose) -> hvac.Client:
    """The only identity that may sign for ``purpose`` (its AppRole, from ``<home>/vault``)."""
    signer = SIGNERS[purpose]
    vdir = vault_dir(settings)
    return approle_login(settings, vdir / f"{signer.files}-role-id",
                         vdir / f"{signer.files}-secret-id", role=signer.role)


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


def service_path(service: str, path: str) -> str:
    """``path`` (under ``secret/suite/``) if it lies in ``service``'s own secrets, else a
    ConfigError: a release reads only its service's secrets."""
    clean = path.strip("/")
    parts = clean.split("/")
    if len(parts) < 3 or parts[:2] != ["services", service] or ".." in parts:
        raise ConfigError(f"secret {path!r} is not one of service {service!r}'s secrets "
                          f"(expected a path under services/{service}/: a release reads only "
                          f"its own service's secrets)")
    return clean


def service_client(vault: hvac.Client, service: str, uses: int = 1) -> hvac.Client:
    """A child of ``vault``'s token minted under :data:`RELEASE_TOKEN_ROLE` with the one policy
    ``suite-service-<service>``: it reads that service's secrets (``uses`` requests, for
    minutes) and nothing else; revoked with its parent."""
    name = f"{SERVICE_POLICY_PREFIX}{service}"
    try:
        made = vault.auth.token.create(
            role_name=RELEASE_TOKEN_ROLE, policies=[name], no_default_policy=True,
            renewable=False, ttl=RELEASE_TOKEN_TTL, num_uses=uses,
            display_name=f"release-{service}")
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"minting a read token for service {service!r} (policy {name!r}, role "
                         f"{RELEASE_TOKEN_ROLE!r}) failed: {type(exc).__name__}; a service "
                         f"onboarded before per-service policies needs `suite services add` "
                         f"again, the role needs `suite up`") from exc
    return _client_at(vault, str(made["auth"]["client_token"]))


def _client_at(vault: hvac.Client, token: str) -> hvac.Client:
    return hvac.Client(url=vault.url, token=token, timeout=30)


def get_service_secret(vault: hvac.Client, service: str, path: str, key: str) -> str:
    """One key of ``service``'s secret ``path``, read with a token minted for that service."""
    clean = service_path(service, path)
    return get_secret(service_client(vault, service), clean, key)


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
