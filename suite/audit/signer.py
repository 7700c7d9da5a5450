"""Signatures for audit records, by the Vault transit key ``suite-sign`` (ed25519)."""

from __future__ import annotations

import base64
from typing import Protocol

import hvac
import hvac.exceptions
import requests

from suite.errors import AuditError
from suite.vault import SIGN_KEY

BATCH = 500


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TransitSigner:
    def __init__(self, client: hvac.Client, key: str = SIGN_KEY) -> None:
        self.client = client
        self.key = key

    def sign(self, data: bytes) -> str:
        try:
            resp = self.client.secrets.transit.sign_data(name=self.key, hash_input=_b64(data))
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise AuditError(
                f"signing the audit record with transit key {self.key!r} failed "
                f"({type(exc).__name__}); is Vault up and unsealed? (`suite status`)"
            ) from exc
        return str(resp["data"]["signature"])

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]:
        results: list[bool] = []
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            batch = [{"input": _b64(data), "signature": sig} for data, sig in chunk]
            try:
                resp = self.client.adapter.post(
                    f"/v1/transit/verify/{self.key}", json={"batch_input": batch}
                )
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                raise AuditError(
                    f"verifying signatures with transit key {self.key!r} failed "
                    f"({type(exc).__name__}); is Vault up and unsealed? (`suite status`)"
                ) from exc
            data = resp["data"] if isinstance(resp, dict) else resp.json()["data"]
            results += [bool(r.get("valid")) for r in data["batch_results"]]
        return results
