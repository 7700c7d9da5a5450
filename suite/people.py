"""People and roles (issue 13 item 2): Vault userpass users, each holding one role.

==========  =========================================================================
role        may
==========  =========================================================================
viewer      look: ``suite whoami``, the audit trail; no Prefect credential
releaser    the above, and start releases (reads Prefect's API credential)
approver    the above, and answer MARGINAL pauses, promote, abort, override a strategy
admin       the above, and manage users (``suite users add``) and the platform
==========  =========================================================================

A role is the set of Vault policies :data:`~suite.vault_policy.PEOPLE_ROLES` gives the user.
``suite login`` caches the user's token (mode 0600, with its expiry) in ``settings.token_file``;
every later command asks Vault who the token is (lookup-self), so the cache names nobody by
itself. Without a login the operator's ``suite-admin`` token (``<home>/vault/admin-token``)
acts, as ``token:suite-admin``.

An approval is never free text: the approver's client asks Vault for an identity token (a JWT
signed by the key ``suite-approval`` under the OIDC role ``suite-approver``, valid
:data:`APPROVAL_TTL`), which only the approver policy may read; the flow has Vault introspect it
and takes the approver's name from its claims (:func:`verify_approval`), then claims it
(:func:`claim_approval`): each token answers one pause, promote, abort or override, once. The JWT
is not a Vault token: whoever copies it can spend its one use within its TTL, nothing else.

Errors: :class:`~suite.errors.ConfigError` (not logged in, expired, bad role or name),
:class:`~suite.errors.VaultError` (Vault refused: wrong password, missing permission),
:class:`~suite.errors.ServiceUnavailable` (Vault does not answer). No message holds a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
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
    APPROVAL_KEY,
    APPROVAL_ROLE,
    APPROVER_POLICY_NAME,
    KV_MOUNT,
    KV_PREFIX,
    PEOPLE_ROLES,
    RELEASER_POLICY_NAME,
    USERPASS_MOUNT,
    VIEWER_POLICY_NAME,
)

#: an approval's identity token is valid this long
APPROVAL_TTL = "5m"
#: a login lasts this long (renewable up to the max)
LOGIN_TTL, LOGIN_MAX_TTL = "8h", "24h"
TOTP_ISSUER = "ultimate-suite"
TOTP_ENFORCEMENT = "suite-totp"
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
#: the claim of an approval token that names the user, and the one that names the role
USER_CLAIM, ROLE_CLAIM = "username", "suite_role"


class Role(StrEnum):
    VIEWER = "viewer"
    RELEASER = "releaser"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


#: the policy that makes a token hold a role (highest first)
_ROLE_POLICY = ((Role.ADMIN, ADMIN_POLICY_NAME), (Role.APPROVER, APPROVER_POLICY_NAME),
                (Role.RELEASER, RELEASER_POLICY_NAME), (Role.VIEWER, VIEWER_POLICY_NAME))


def role_of(policies: list[str] | tuple[str, ...]) -> Role | None:
    """The highest role the policies give (None: no people role)."""
    for role, policy in _ROLE_POLICY:
        if policy in policies:
            return role
    return None


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError as exc:
        raise ConfigError(f"role {text!r} is not a role (expected one of "
                          f"{', '.join(r.value for r in Role)})") from exc


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"user name {name!r} is not valid (expected lower-case letters, digits, "
                          f"'.', '_' or '-', starting with a letter, at most 64)")
    return name


@dataclass(frozen=True)
class Session:
    """A cached login: who, with which role, until when, against which Vault."""

    name: str
    role: Role
    expires: datetime
    vault_addr: str
    token: str = field(repr=False)

    def to_json(self) -> str:
        return json.dumps({"version": 1, "name": self.name, "role": self.role.value,
                           "expires": self.expires.isoformat(), "vault_addr": self.vault_addr,
                           "token": self.token})

    @classmethod
    def from_json(cls, text: str, where: Path) -> Session:
        try:
            data = json.loads(text)
            return cls(str(data["name"]), Role(data["role"]),
                       datetime.fromisoformat(data["expires"]), str(data["vault_addr"]),
                       str(data["token"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the login cache {where} is not valid ({type(exc).__name__}): "
                              f"run `suite login` again") from exc


@dataclass(frozen=True)
class Identity:
    """Who acts: ``userpass:<name>`` (a login) or ``token:suite-admin`` (the operator)."""

    name: str
    role: Role | None
    expires: datetime | None = None
    policies: tuple[str, ...] = ()

    def can(self, role: Role) -> bool:
        return self.role is not None and self.role.rank >= role.rank


# -- the login cache ------------------------------------------------------------------------

def _token_file(settings: Settings) -> Path:
    if settings.token_file is None:
        raise ConfigError("no place for the login cache: set SUITE_TOKEN_FILE (or HOME)")
    return settings.token_file


def save_session(settings: Settings, session: Session) -> Path:
    path = _token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, session.to_json(), mode=0o600)
    return path


def load_session(settings: Settings, now: datetime | None = None) -> Session | None:
    """The cached login for this platform's Vault; None when there is none. An expired one,
    or one for another Vault, is an error saying to log in again."""
    if settings.token_file is None or not settings.token_file.exists():
        return None
    path = settings.token_file
    session = Session.from_json(path.read_text(), path)
    if session.vault_addr != settings.vault_addr:
        raise ConfigError(f"the login in {path} is for Vault {session.vault_addr}, this platform's "
                          f"is {settings.vault_addr}: run `suite login` (or `suite logout`)")
    if session.expires <= (now or datetime.now(UTC)):
        raise ConfigError(f"the login of {session.name} expired at "
                          f"{session.expires.isoformat(timespec='seconds')}: run `suite login`")
    return session


def logout(settings: Settings) -> bool:
    """Revoke the cached token (best effort) and remove the cache; False when there was none."""
    path = settings.token_file
    if path is None or not path.exists():
        return False
    try:
        session = Session.from_json(path.read_text(), path)
        _client(settings, session.token).auth.token.revoke_self()
    except (ConfigError, hvac.exceptions.VaultError, requests.RequestException):
        pass  # an expired or foreign token: removing the cache is what matters
    path.unlink(missing_ok=True)
    return True


# -- Vault calls ----------------------------------------------------------------------------

def _client(settings: Settings, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=settings.vault_addr, token=token, timeout=30)


def _post(settings: Settings, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    try:
        resp = requests.post(f"{settings.vault_addr}/v1/{path}", json=body, timeout=30)
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"Vault at {settings.vault_addr} does not answer "
                                 f"({type(exc).__name__}): `suite status`") from exc
    if resp.status_code >= 400:
        try:
            errors = "; ".join(resp.json().get("errors") or [])
        except ValueError:
            errors = ""
        raise VaultError(f"Vault refused {path.split('/')[0]}/… ({resp.status_code}): "
                         f"{errors[:200] or 'no reason given'}")
    data: dict[str, Any] = resp.json()
    return data


def login(settings: Settings, name: str, password: str,
          passcode: Callable[[], str] | None = None, now: datetime | None = None) -> Session:
    """Userpass login (with the TOTP passcode when the user has MFA), cached by the caller."""
    check_name(name)
    try:
        auth = _post(settings, f"auth/{USERPASS_MOUNT}/login/{name}",
                     {"password": password})["auth"]
    except VaultError as exc:
        raise VaultError(f"login as {name!r} failed: wrong name or password, or no such user "
                         f"(`suite users add` makes one)") from exc
    need = auth.get("mfa_requirement")
    if need:
        if passcode is None:
            raise ConfigError(f"{name} logs in with a TOTP passcode: run `suite login` on a "
                              f"terminal or pass --passcode")
        methods = [m["id"] for c in need["mfa_constraints"].values() for m in c["any"]]
        code = passcode()
        try:
            auth = _post(settings, "sys/mfa/validate", {
                "mfa_request_id": need["mfa_request_id"],
                "mfa_payload": {m: [code] for m in methods}})["auth"]
        except VaultError as exc:
            raise VaultError(f"login as {name!r} failed: the TOTP passcode was not accepted "
                             f"(a wrong code, or one already used: wait for the next)") from exc
    role = role_of(tuple(auth.get("policies") or ()))
    if role is None:
        raise VaultError(f"{name} has no role (policies {auth.get('policies')}): an admin runs "
                         f"`suite users add {name} --role ROLE`")
    expires = (now or datetime.now(UTC)) + timedelta(seconds=int(auth["lease_duration"]))
    return Session(name, role, expires, settings.vault_addr, str(auth["client_token"]))


def _lookup(settings: Settings, token: str, where: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = _client(settings, token).auth.token.lookup_self()["data"]
        return data
    except hvac.exceptions.Forbidden as exc:
        raise ConfigError(f"the token in {where} is no longer valid (expired or revoked): run "
                          f"`suite login`") from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Vault at {settings.vault_addr} did not answer who the token "
                                 f"in {where} is ({type(exc).__name__}): `suite status`") from exc


def identity(settings: Settings) -> Identity:
    """Who this process acts as, as Vault says: a worker's AppRole, the logged-in person, or
    the operator's admin token; a ConfigError saying to log in when there is none."""
    if settings.vault_role_id_file and settings.vault_secret_id_file:
        return Identity("approle:suite-worker", None)
    session = load_session(settings)
    if session is not None:
        data = _lookup(settings, session.token, str(settings.token_file))
        user = (data.get("meta") or {}).get("username") or session.name
        policies = tuple(data.get("policies") or ())
        expires = data.get("expire_time")
        return Identity(f"userpass:{user}", role_of(policies),
                        datetime.fromisoformat(expires) if expires else None, policies)
    admin = settings.dir("vault", "admin-token")
    try:
        token = admin.read_text().strip()
    except OSError as exc:
        raise ConfigError("not logged in: run `suite login NAME` (an admin makes users with "
                          "`suite users add`)") from exc
    data = _lookup(settings, token, str(admin))
    policies = tuple(data.get("policies") or ())
    return Identity(f"token:{ADMIN_POLICY_NAME}", role_of(policies), None, policies)


def require(settings: Settings, role: Role, doing: str) -> Identity:
    """The caller's identity if it holds ``role`` (or a higher one), else a clear refusal."""
    who = identity(settings)
    if not who.can(role):
        raise VaultError(f"{who.name} has role {who.role or 'none'}: {doing} needs the {role} "
                         f"role (an admin grants it with `suite users add NAME --role {role}`)")
    return who


def _session_client(settings: Settings) -> tuple[hvac.Client, Session]:
    session = load_session(settings)
    if session is None:
        raise ConfigError("an approval is signed by a person: run `suite login NAME` as an "
                          "approver (the operator's admin token has no person behind it)")
    return _client(settings, session.token), session


def approval_token(settings: Settings,
                   clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep) -> str:
    """A fresh identity token (JWT, :data:`APPROVAL_TTL`) naming the logged-in approver.

    Vault's identity token has no nonce: two asked for in the same second are the same token,
    and a token answers once (:func:`claim_approval`). So this returns only once the clock has
    passed the token's issue second: the next one asked for is another token."""
    client, session = _session_client(settings)
    try:
        token = str(client.secrets.identity.generate_signed_id_token(name=APPROVAL_ROLE)
                    ["data"]["token"])
    except hvac.exceptions.Forbidden as exc:
        raise VaultError(f"userpass:{session.name} (role {session.role}) may not approve: "
                         f"answering a pause, promote, abort and a strategy override need "
                         f"the approver role") from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Vault did not issue an approval token "
                                 f"({type(exc).__name__}): `suite status`") from exc
    issued = jwt_claims(token).get("iat")
    if isinstance(issued, int | float):
        while (left := issued + 1 - clock()) > 0:
            sleep(min(left, 0.1))
    return token


# -- checking an approval (the flow side) ----------------------------------------------------

@dataclass(frozen=True)
class Checked:
    """An approval token checked: ``approver`` (``userpass:<name>``) or why it is refused."""

    approver: str | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.approver is not None


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (Vault verifies; this only reads them)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError(f"not a JWT ({len(parts)} parts, expected 3)")
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(body))
    if not isinstance(claims, dict):
        raise ValueError("the JWT's claims are not an object")
    return claims


def check_claims(claims: Mapping[str, Any], client_id: str, now: datetime) -> Checked:
    """Pure: the claims of a token Vault has verified name an approver, for our role, unexpired."""
    if claims.get("aud") != client_id:
        return Checked(None, f"the token is for another audience ({claims.get('aud')!r}), not "
                             f"the approval role {APPROVAL_ROLE}")
    if claims.get(ROLE_CLAIM) != Role.APPROVER.value:
        return Checked(None, f"the token's role is {claims.get(ROLE_CLAIM)!r}, not approver")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now.timestamp():
        return Checked(None, "the approval token has expired (run `suite approve-token` again)")
    user = claims.get(USER_CLAIM)
    if not isinstance(user, str) or not _NAME.fullmatch(user):
        return Checked(None, f"the token names no user ({USER_CLAIM}={user!r})")
    return Checked(f"userpass:{user}", f"approver userpass:{user}")


def verify_approval(vault: hvac.Client, token: str | None,
                    now: datetime | None = None) -> Checked:
    """Vault checks the signature and expiry (introspect, against the approval role's client
    id); then :func:`check_claims`. Never raises: a refusal is a value with its reason."""
    if not token or not token.strip():
        return Checked(None, "no approval token: an approver runs `suite release promote|abort` "
                             "or pastes `suite approve-token` into the form")
    try:
        claims = jwt_claims(token)
    except ValueError as exc:
        return Checked(None, f"the approval token is not a JWT: {exc}")
    try:
        client_id = vault.secrets.identity.read_role(name=APPROVAL_ROLE)["data"]["client_id"]
        result = vault.secrets.identity.introspect_signed_id_token(token=token.strip(),
                                                                   client_id=client_id)
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        return Checked(None, f"Vault could not check the approval token ({type(exc).__name__})")
    if not result.get("active"):
        return Checked(None, f"Vault refused the approval token: "
                             f"{str(result.get('error') or 'not active')[:200]}")
    return check_claims(claims, client_id, now or datetime.now(UTC))


def used_path(token: str) -> str:
    """Where the use of an approval token is recorded (under ``secret/suite/``): its sha256,
    never the token."""
    return f"approvals/used/{hashlib.sha256(token.strip().encode()).hexdigest()}"


def claim_approval(vault: hvac.Client, token: str, checked: Checked,
                   now: datetime | None = None) -> Checked:
    """Spend a verified approval token's one use: a KV write with check-and-set 0, which only
    the first use of a token can make (the worker may create there, never update). A second use
    is refused as already used; never raises."""
    if not checked.ok:
        return checked
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    try:
        vault.secrets.kv.v2.create_or_update_secret(
            path=f"{KV_PREFIX}/{used_path(token)}", mount_point=KV_MOUNT, cas=0,
            secret={"approver": checked.approver, "at": at})
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
        # cas=0 on an existing entry fails the check-and-set; with create-only, Vault's ACL
        # already refuses the write (403) because the entry exists
        return Checked(None, f"the approval token of {checked.approver} was already used (each "
                             f"token answers once: run `suite approve-token` again)")
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        return Checked(None, f"Vault could not record the approval token's use "
                             f"({type(exc).__name__}); it was not accepted")
    return checked


# -- the bootstrap and users ------------------------------------------------------------------

def userpass_accessor(client: hvac.Client) -> str:
    return str(client.sys.list_auth_methods()["data"][f"{USERPASS_MOUNT}/"]["accessor"])


def bootstrap(client: hvac.Client) -> None:
    """Idempotent, on every `suite up`: userpass, the approval key and role, the TOTP method."""
    if f"{USERPASS_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("userpass", path=USERPASS_MOUNT)
    accessor = userpass_accessor(client)
    ident = client.secrets.identity
    ident.create_named_key(name=APPROVAL_KEY, allowed_client_ids=["*"], algorithm="EdDSA",
                           rotation_period="24h", verification_ttl="24h")
    # the user claim is a template Vault fills (unquoted: it renders a JSON string)
    user = "{{identity.entity.aliases." + accessor + ".name}}"
    template = (f'{{"{USER_CLAIM}": {user}, '
                f'"{ROLE_CLAIM}": "{Role.APPROVER.value}"}}')
    ident.create_or_update_role(name=APPROVAL_ROLE, key=APPROVAL_KEY, template=template,
                                ttl=APPROVAL_TTL)
    totp_method(client)


def totp_method(client: hvac.Client) -> str:
    """The id of the platform's TOTP method (made once)."""
    try:
        ids = client.list("identity/mfa/method/totp")["data"]["keys"]
    except (hvac.exceptions.InvalidPath, TypeError, KeyError):
        ids = []
    for method in ids:
        info = client.read(f"identity/mfa/method/totp/{method}") or {}
        if (info.get("data") or {}).get("issuer") == TOTP_ISSUER:
            return str(method)
    made = client.write_data("identity/mfa/method/totp",
                             data={"issuer": TOTP_ISSUER, "period": 30, "digits": 6,
                                   "algorithm": "SHA1"})
    return str(made["data"]["method_id"])


def add_user(client: hvac.Client, name: str, password: str, role: Role,
             totp: bool = False) -> str | None:
    """Create or update user ``name`` with ``role``; with ``totp`` the otpauth:// URL of its new
    TOTP secret (shown once, for an authenticator app), else None."""
    check_name(name)
    if len(password) < 12:
        raise ConfigError(f"the password of {name} has {len(password)} characters (expected at "
                          f"least 12)")
    try:
        client.write_data(f"auth/{USERPASS_MOUNT}/users/{name}", data={
            "password": password, "token_policies": ",".join(PEOPLE_ROLES[role.value]),
            "token_ttl": LOGIN_TTL, "token_max_ttl": LOGIN_MAX_TTL})
        if not totp:
            return None
        return _enrol_totp(client, name)
    except hvac.exceptions.Forbidden as exc:
        raise VaultError(f"adding user {name!r} was refused: it needs the admin role (or the "
                         f"operator's admin token)") from exc


def _enrol_totp(client: hvac.Client, name: str) -> str:
    """An entity for the user (so the secret is theirs before their first login), a TOTP
    secret for it, and the user in the login enforcement."""
    accessor = userpass_accessor(client)
    entity = client.write_data(f"identity/entity/name/{USERPASS_MOUNT}-{name}",
                               data={"metadata": {"user": name}})
    if entity is None:  # an update answers 204
        entity = client.read(f"identity/entity/name/{USERPASS_MOUNT}-{name}")
    entity_id = str(entity["data"]["id"])
    aliases = entity["data"].get("aliases") or []
    if not any(a.get("mount_accessor") == accessor for a in aliases):
        client.write_data("identity/entity-alias", data={
            "name": name, "canonical_id": entity_id, "mount_accessor": accessor})
    method = totp_method(client)
    client.write_data("identity/mfa/method/totp/admin-destroy",
                      data={"method_id": method, "entity_id": entity_id})
    made = client.write_data("identity/mfa/method/totp/admin-generate",
                             data={"method_id": method, "entity_id": entity_id})
    try:
        current = client.read(f"identity/mfa/login-enforcement/{TOTP_ENFORCEMENT}") or {}
    except hvac.exceptions.InvalidPath:
        current = {}
    ids = set((current.get("data") or {}).get("identity_entity_ids") or [])
    client.write_data(f"identity/mfa/login-enforcement/{TOTP_ENFORCEMENT}", data={
        "mfa_method_ids": [method], "identity_entity_ids": sorted(ids | {entity_id})})
    return str(made["data"]["url"])


def list_users(client: hvac.Client) -> dict[str, Role | None]:
    try:
        names = client.list(f"auth/{USERPASS_MOUNT}/users")["data"]["keys"]
    except (hvac.exceptions.InvalidPath, TypeError, KeyError):
        return {}
    out: dict[str, Role | None] = {}
    for name in names:
        info = client.read(f"auth/{USERPASS_MOUNT}/users/{name}") or {}
        out[str(name)] = role_of(tuple((info.get("data") or {}).get("token_policies") or ()))
    return out


def remove_user(client: hvac.Client, name: str) -> None:
    check_name(name)
    client.delete(f"auth/{USERPASS_MOUNT}/users/{name}")
