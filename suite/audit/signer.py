"""Signatures for audit records and HEAD, by the Vault transit key ``suite-audit`` (ed25519),
which only the AppRole ``suite-audit`` may sign with (:mod:`suite.vault_policy`).

A signature names its key: ``transit:suite-audit:vault:v1:…``. A bare ``vault:v1:…`` is a
record signed before keys were split by purpose, by the legacy key ``suite-sign``, and still
verifies with it. A signature naming any other key (say the provenance key, which the build
identity signs arbitrary payloads with) does not count for the audit trail.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Protocol

import hvac
import hvac.exceptions
import requests

from suite.errors import AuditError, SuiteError
from suite.vault_policy import LEGACY_SIGN_KEY, SIGNERS, Purpose

BATCH = 500
PREFIX = "transit:"
AUDIT_KEY = SIGNERS[Purpose.AUDIT].key


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def split(signature: str) -> tuple[str, str]:
    """(key name, Vault's own ``vault:vN:…`` signature) of a stored signature."""
    if signature.startswith(PREFIX):
        key, _, vault_sig = signature[len(PREFIX):].partition(":")
        return key, vault_sig
    return LEGACY_SIGN_KEY, signature


class TransitSigner:
    """Signs as ``client`` (a client, or a function that logs in on first use, so a trail can be
    made while Vault is down and fail only when a record is signed)."""

    def __init__(self, client: hvac.Client | Callable[[], hvac.Client], key: str = AUDIT_KEY,
                 verify_keys: tuple[str, ...] = (AUDIT_KEY, LEGACY_SIGN_KEY)) -> None:
        self._client = client
        self.key = key
        self.verify_keys = verify_keys

    @property
    def client(self) -> hvac.Client:
        if not callable(self._client):
            return self._client
        try:
            self._client = self._client()
        except SuiteError as exc:
            raise AuditError(f"the audit identity cannot log in to Vault ({exc}); is Vault up "
                             f"and unsealed? (`suite status`)") from exc
        return self._client

    def sign(self, data: bytes) -> str:
        try:
            resp = self.client.secrets.transit.sign_data(name=self.key, hash_input=_b64(data))
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise AuditError(
                f"signing the audit record with transit key {self.key!r} failed "
                f"({type(exc).__name__}); is Vault up and unsealed? (`suite status`)"
            ) from exc
        return f"{PREFIX}{self.key}:{resp['data']['signature']}"

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]:
        results = [False] * len(items)
        by_key: dict[str, list[int]] = {}
        for index, (_, signature) in enumerate(items):
            key, _ = split(signature)
            if key in self.verify_keys:  # any other key's signature is not an audit signature
                by_key.setdefault(key, []).append(index)
        for key, indexes in by_key.items():
            for start in range(0, len(indexes), BATCH):
                chunk = indexes[start:start + BATCH]
                batch = [{"input": _b64(items[i][0]), "signature": split(items[i][1])[1]}
                         for i in chunk]
                for i, ok in zip(chunk, self._verify(key, batch), strict=True):
                    results[i] = ok
        return results

    def _verify(self, key: str, batch: list[dict[str, str]]) -> list[bool]:
        try:
            resp = self.client.adapter.post(
                f"/v1/transit/verify/{key}", json={"batch_input": batch}
            )
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise AuditError(
                f"verifying signatures with transit key {key!r} failed "
                f"({type(exc).__name__}); is Vault up and unsealed? (`suite status`)"
            ) from exc
        data = resp["data"] if isinstance(resp, dict) else resp.json()["data"]
        return [bool(r.get("valid")) for r in data["batch_results"]]
