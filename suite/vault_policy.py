"""Who may do what in Vault: one transit signing key per purpose, one identity per key.

========================  ===================  ========================================
purpose                   transit key          the only identity that signs with it
========================  ===================  ========================================
audit records and HEAD    ``suite-audit``      AppRole ``suite-audit``
build provenance          ``suite-provenance`` AppRole ``suite-builder``
model attestations        ``suite-attest``     AppRole ``suite-trainer``
scan waivers              ``suite-waiver``     a person with the approver role (people
                                               policies: :data:`WAIVER_SIGN_POLICY`)
========================  ===================  ========================================

``suite-sign``, the one key that signed everything before, stays for verification only: records
and envelopes it signed still verify, and no policy lets anyone sign with it again. Verifying is
a public-key operation, so every identity may verify with every signing key. ``suite-worker``
(flow runs, the webhook) reads ``secret/suite/*`` except ``secret/suite/services/*`` and uses
``suite-data``; it signs nothing. A release reads its service's secrets with a child token minted
under the token role ``suite-release`` with the one policy ``suite-service-<service>`` (written
when the service is onboarded), which reads nothing else; the worker also claims each approval
token once (create-only KV ``secret/suite/approvals/used/<sha256>``).
``suite-admin`` (the operator's CLI token) also runs the bootstrap on every ``suite up`` once the
root token is revoked, so it may manage the ``suite-*`` policies, keys and AppRoles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

KV_MOUNT = "secret"
KV_PREFIX = "suite"
DATA_KEY = "suite-data"
LEGACY_SIGN_KEY = "suite-sign"
WORKER_ROLE = "suite-worker"
ADMIN_POLICY_NAME = "suite-admin"
SERVICE_POLICY_PREFIX = "suite-service-"
#: the token role a release mints its service's read token under (suite.vault.service_client):
#: only ``suite-service-*`` policies, no default policy, not renewable, minutes long
RELEASE_TOKEN_ROLE = "suite-release"  # noqa: S105 - a role name, not a secret
RELEASE_TOKEN_TTL = "2m"  # noqa: S105 - a duration, not a secret
RELEASE_TOKEN_MAX_TTL = "5m"  # noqa: S105
#: the transit key scan waivers are signed with (policies/waivers.py): a person's key, not an
#: AppRole's, so it is not among :data:`SIGNERS`
WAIVER_KEY = "suite-waiver"


class Purpose(StrEnum):
    AUDIT = "audit"
    PROVENANCE = "provenance"
    ATTESTATION = "attestation"


@dataclass(frozen=True)
class Signer:
    """A signing identity: its transit key, its AppRole and the stem of its credential files."""

    purpose: Purpose
    key: str
    role: str
    files: str  # <home>/vault/<files>-role-id and <files>-secret-id

    @property
    def verify_keys(self) -> tuple[str, ...]:
        """Keys whose signatures count for this purpose: its own, and the legacy key."""
        return (self.key, LEGACY_SIGN_KEY)


SIGNERS: dict[Purpose, Signer] = {
    Purpose.AUDIT: Signer(Purpose.AUDIT, "suite-audit", "suite-audit", "audit"),
    Purpose.PROVENANCE: Signer(Purpose.PROVENANCE, "suite-provenance", "suite-builder", "build"),
    Purpose.ATTESTATION: Signer(Purpose.ATTESTATION, "suite-attest", "suite-trainer", "train"),
}
SIGN_KEYS = tuple(s.key for s in SIGNERS.values())
#: every AppRole: (role, stem of its credential files, its policy)
ROLES: tuple[tuple[str, str], ...] = (
    (WORKER_ROLE, "worker"), *((s.role, s.files) for s in SIGNERS.values()))

#: AppRole secret-ids: valid this long and for this many logins (a process logs in once per
#: role and reuses its token); `suite up` issues fresh ones and destroys all but the last two
SECRET_ID_TTL = "720h"  # noqa: S105 - a duration, not a secret
SECRET_ID_NUM_USES = 10000


def _verify_all() -> str:
    return "".join(f'path "transit/verify/{k}" {{ capabilities = ["update"] }}\n'
                   for k in (*SIGN_KEYS, WAIVER_KEY, LEGACY_SIGN_KEY))


#: signing scan waivers: part of the approver role's policy (so admins, who hold it too), never
#: of an AppRole's nor of the operator's admin token: a waiver names a person. Lookup-self
#: names the signer in the waiver.
WAIVER_SIGN_POLICY = f"""
# sign scan waivers (policies/waivers.py): the approver role
path "transit/sign/{WAIVER_KEY}" {{ capabilities = ["update"] }}
path "transit/verify/{WAIVER_KEY}" {{ capabilities = ["update"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
"""


#: where the audit signer keeps the HEAD counter of each trail (suite.audit.anchor)
AUDIT_HEAD_KV = f"{KV_MOUNT}/data/{KV_PREFIX}/audit/head/*"


def signer_policy(signer: Signer) -> str:
    anchor = (f'path "{AUDIT_HEAD_KV}" {{ capabilities = ["create", "read", "update"] }}\n'
              if signer.purpose is Purpose.AUDIT else "")
    return (f"# {signer.role}: signs {signer.purpose} with {signer.key}, nothing else\n"
            f'path "transit/sign/{signer.key}" {{ capabilities = ["update"] }}\n'
            + anchor + _verify_all())


#: services' secrets (``secret/suite/services/<service>/...``): read only with a token minted
#: for that one service under :data:`RELEASE_TOKEN_ROLE`
SERVICES_KV = f"{KV_MOUNT}/data/{KV_PREFIX}/services/*"
#: an approval token, once used, is claimed here (``<sha256 hex>``, check-and-set 0)
APPROVALS_USED_KV = f"{KV_MOUNT}/data/{KV_PREFIX}/approvals/used/*"

WORKER_POLICY = f"""
# suite-worker: what a Prefect worker (and the flows it runs) may do, nothing more: no signing
path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{ capabilities = ["read"] }}
# a more specific path wins: no service's secrets with this token; a release reads its own
# service's with a child token (policy {SERVICE_POLICY_PREFIX}<service>) minted under this role
path "{SERVICES_KV}" {{ capabilities = ["deny"] }}
path "auth/token/create/{RELEASE_TOKEN_ROLE}" {{ capabilities = ["update"] }}
# claim an approval token once: create only, so a second claim of the same token is refused
path "{APPROVALS_USED_KV}" {{ capabilities = ["create"] }}
path "transit/encrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/decrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
""" + _verify_all()

ADMIN_POLICY = f"""
# suite-admin: the platform operator's everyday token (CLI), instead of the root token, and the
# bootstrap of every `suite up` after the root token is revoked. It signs nothing itself.
path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = ["create", "read", "update", "patch", "delete"]
}}
path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{ capabilities = ["read", "list", "delete"] }}
path "transit/encrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/decrypt/{DATA_KEY}" {{ capabilities = ["update"] }}
path "transit/keys" {{ capabilities = ["list"] }}
path "transit/keys/suite-*" {{ capabilities = ["create", "read", "update"] }}
path "sys/mounts" {{ capabilities = ["read"] }}
path "sys/auth" {{ capabilities = ["read", "sudo"] }}
path "auth/approle/role/suite-*" {{ capabilities = ["create", "read", "update", "list"] }}
path "auth/token/create" {{ capabilities = ["update"] }}
path "auth/token/create/{RELEASE_TOKEN_ROLE}" {{ capabilities = ["update"] }}
path "auth/token/roles/{RELEASE_TOKEN_ROLE}" {{ capabilities = ["create", "read", "update"] }}
path "sys/policies/acl/suite-*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "sys/policy/suite-*" {{ capabilities = ["create", "read", "update", "delete"] }}
# recovery: `bao operator generate-root` with this token and the unseal key (docs/security.md)
path "sys/generate-root-token/*" {{ capabilities = ["create", "read", "update", "delete"] }}
""" + _verify_all()


def policies() -> dict[str, str]:
    """Every policy the bootstrap writes, by name."""
    out = {WORKER_ROLE: WORKER_POLICY + WORKER_INTROSPECT_POLICY,
           ADMIN_POLICY_NAME: ADMIN_POLICY + PEOPLE_ADMIN_POLICY}
    out.update({s.role: signer_policy(s) for s in SIGNERS.values()})
    out.update(people_policies())
    return out


# -- people (issue 13 item 2): userpass users hold one role, each a set of these policies ------

VIEWER_POLICY_NAME = "suite-viewer"
RELEASER_POLICY_NAME = "suite-releaser"
APPROVER_POLICY_NAME = "suite-approver"
#: the OIDC identity-token role an approval is signed under, and its key (suite.people)
APPROVAL_ROLE = "suite-approver"
APPROVAL_KEY = "suite-approval"
#: where Prefect's API credential is kept (H4: the auth string): people who may reach Prefect
PREFECT_AUTH_KV = f"{KV_MOUNT}/data/{KV_PREFIX}/platform/prefect"
#: the userpass mount people log in at
USERPASS_MOUNT = "userpass"

VIEWER_POLICY = """
# suite-viewer: a person who looks (suite whoami, the audit trail); no Prefect credential, so
# no release can be started, altered or approved
path "auth/token/lookup-self" { capabilities = ["read"] }
"""

RELEASER_POLICY = f"""
# suite-releaser: a person who starts releases: reads Prefect's API credential
path "{PREFECT_AUTH_KV}" {{ capabilities = ["read"] }}
"""

APPROVER_POLICY = f"""
# suite-approver: a person who answers MARGINAL pauses, promotes, aborts and overrides a
# release's strategy: asks Vault for a short-lived signed identity token (a JWT) naming them
path "identity/oidc/token/{APPROVAL_ROLE}" {{ capabilities = ["read"] }}
path "{PREFECT_AUTH_KV}" {{ capabilities = ["read"] }}
"""

#: the bootstrap (as suite-admin) sets up people; admins manage users
PEOPLE_ADMIN_POLICY = f"""
# people (suite.people): userpass, the approval identity tokens, TOTP login MFA, users
path "sys/auth/{USERPASS_MOUNT}" {{ capabilities = ["create", "read", "update", "sudo"] }}
path "auth/{USERPASS_MOUNT}/users/*" {{
  capabilities = ["create", "read", "update", "delete", "list"]
}}
path "auth/{USERPASS_MOUNT}/users" {{ capabilities = ["list"] }}
path "identity/oidc/key/{APPROVAL_KEY}" {{ capabilities = ["create", "read", "update"] }}
path "identity/oidc/role/{APPROVAL_ROLE}" {{ capabilities = ["create", "read", "update"] }}
path "identity/entity" {{ capabilities = ["create", "update"] }}
path "identity/entity/name/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "identity/entity-alias" {{ capabilities = ["create", "update"] }}
path "identity/mfa/method/totp" {{ capabilities = ["create", "update", "list"] }}
path "identity/mfa/method/totp/*" {{ capabilities = ["create", "read", "update", "list"] }}
path "identity/mfa/login-enforcement/suite-totp" {{ capabilities = ["create", "read", "update"] }}
path "identity/oidc/introspect" {{ capabilities = ["update"] }}
"""

#: the worker checks an approval's identity token (never issues one)
WORKER_INTROSPECT_POLICY = f"""
# check approvals: an approver's identity token (suite.people.verify_approval)
path "identity/oidc/introspect" {{ capabilities = ["update"] }}
path "identity/oidc/role/{APPROVAL_ROLE}" {{ capabilities = ["read"] }}
"""

#: role -> the policies its userpass users hold (each role holds the ones below it)
PEOPLE_ROLES: dict[str, tuple[str, ...]] = {
    "viewer": (VIEWER_POLICY_NAME,),
    "releaser": (VIEWER_POLICY_NAME, RELEASER_POLICY_NAME),
    "approver": (VIEWER_POLICY_NAME, RELEASER_POLICY_NAME, APPROVER_POLICY_NAME),
    "admin": (VIEWER_POLICY_NAME, RELEASER_POLICY_NAME, APPROVER_POLICY_NAME, ADMIN_POLICY_NAME),
}


def people_policies() -> dict[str, str]:
    return {VIEWER_POLICY_NAME: VIEWER_POLICY, RELEASER_POLICY_NAME: RELEASER_POLICY,
            APPROVER_POLICY_NAME: APPROVER_POLICY + WAIVER_SIGN_POLICY}
