"""SLSA v1 build provenance as an in-toto Statement v1, in a DSSE envelope signed by Vault.

The statement's subject is the image's registry digest; ``resolvedDependencies`` name the git
commit, the base image digest and the dependency lockfile digest; the SBOM's digest is a
byproduct, so the SBOM cannot be swapped either. The envelope signature covers DSSE's
pre-authentication encoding (PAE) of the payload and is made by transit key ``suite-provenance``
(ed25519), which only the build identity (AppRole ``suite-builder``) may sign with; anyone with
transit verify can check. The key id names the key (``vault-transit:KEY:vN``): envelopes signed
before keys were split by purpose name ``suite-sign`` and still verify; a signature by any other
key (the audit or model-attestation key) is not provenance.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions
import requests

from suite.errors import VaultError
from suite.vault_policy import SIGNERS, Purpose

SIGN_KEY = SIGNERS[Purpose.PROVENANCE].key
VERIFY_KEYS = SIGNERS[Purpose.PROVENANCE].verify_keys

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "urn:ultimate-suite:build:container-image:v1"
BUILDER_ID = "urn:ultimate-suite:builder:local-engine"


@dataclass(frozen=True)
class Dependency:
    uri: str
    digest: Mapping[str, str]
    name: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri, "digest": dict(self.digest)}
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class BuildFacts:
    """What the build stage knows once the image is pushed."""

    repository: str
    tag: str
    digest: str  # sha256:…
    dependencies: tuple[Dependency, ...]
    external_parameters: Mapping[str, Any]
    builder_version: Mapping[str, str]
    started_on: str
    finished_on: str
    invocation_id: str
    byproducts: tuple[Dependency, ...] = ()


def _split_digest(digest: str) -> dict[str, str]:
    algo, _, value = digest.partition(":")
    return {algo: value}


def statement(facts: BuildFacts) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.repository, "digest": _split_digest(facts.digest),
                     "annotations": {"tag": facts.tag}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": dict(facts.external_parameters),
                "internalParameters": {},
                "resolvedDependencies": [d.as_json() for d in facts.dependencies],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": dict(facts.builder_version)},
                "metadata": {"invocationId": facts.invocation_id,
                             "startedOn": facts.started_on, "finishedOn": facts.finished_on},
                "byproducts": [b.as_json() for b in facts.byproducts],
            },
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign_envelope(vault: hvac.Client, stmt: Mapping[str, Any], key: str = SIGN_KEY,
                  what: str = "provenance") -> dict[str, Any]:
    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    try:
        resp = vault.secrets.transit.sign_data(name=key, hash_input=_b64(pae(PAYLOAD_TYPE,
                                                                               payload)))
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise VaultError(
            f"signing {what} with transit key {key!r} failed ({type(exc).__name__}); "
            f"is Vault up and unsealed? (`suite status`)"
        ) from exc
    vault_sig = str(resp["data"]["signature"])  # vault:v<N>:<base64>
    _, version, sig = vault_sig.split(":", 2)
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": _b64(payload),
        "signatures": [{"keyid": f"vault-transit:{key}:{version}", "sig": sig}],
    }


def verify_envelope(vault: hvac.Client, envelope: Mapping[str, Any],
                    keys: Sequence[str] = VERIFY_KEYS, what: str = "provenance"
                    ) -> tuple[bool, str]:
    """(valid, why) for the envelope's signatures, checked by Vault transit verify; only a
    signature by one of ``keys`` (the keys of ``what``: provenance, model attestation)
    counts."""
    try:
        payload = base64.b64decode(str(envelope["payload"]), validate=True)
        sigs: Sequence[Mapping[str, str]] = envelope["signatures"]
        payload_type = str(envelope["payloadType"])
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"envelope is malformed ({type(exc).__name__}: {exc})"
    if payload_type != PAYLOAD_TYPE:
        return False, f"payloadType is {payload_type!r} (expected {PAYLOAD_TYPE!r})"
    if not sigs:
        return False, "envelope has no signatures"
    for sig in sigs:
        prefix, key, version = [*str(sig.get("keyid", "")).split(":"), "", "", ""][:3]
        if prefix != "vault-transit" or not key:
            return False, f"unknown key id {sig.get('keyid')!r} (expected vault-transit:KEY:vN)"
        if key not in keys:
            return False, (f"signed by {sig.get('keyid')}, which is not a {what} key "
                           f"(expected one of {', '.join(keys)})")
        try:
            resp = vault.secrets.transit.verify_signed_data(
                name=key, hash_input=_b64(pae(payload_type, payload)),
                signature=f"vault:{version}:{sig.get('sig', '')}",
            )
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            if isinstance(exc, hvac.exceptions.InvalidRequest):
                return False, f"signature by {sig.get('keyid')} is malformed: {exc}"
            raise VaultError(
                f"verifying {what} with transit key {key!r} failed ({type(exc).__name__})"
            ) from exc
        if not resp["data"]["valid"]:
            return False, f"signature by {sig.get('keyid')} does not match the payload"
    return True, f"signed by {', '.join(str(s.get('keyid')) for s in sigs)}"


def payload_of(envelope: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(str(envelope["payload"])))
    return data
