"""Audit signatures name their key; legacy ``suite-sign`` ones still verify, others never count."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from suite.audit.signer import TransitSigner, split
from suite.errors import AuditError, VaultError


class FakeVault:
    """hvac's transit sign and batch verify, one local ed25519 key per transit key name."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.verified: list[str] = []
        self.secrets = type("S", (), {"transit": self})()
        self.adapter = self

    def key(self, name: str) -> Ed25519PrivateKey:
        return self.keys.setdefault(name, Ed25519PrivateKey.generate())

    def sign_data(self, name: str, hash_input: str) -> dict[str, Any]:
        sig = self.key(name).sign(base64.b64decode(hash_input))
        return {"data": {"signature": "vault:v1:" + base64.b64encode(sig).decode()}}

    def post(self, url: str, json: dict[str, Any]) -> dict[str, Any]:
        name = url.rsplit("/", 1)[1]
        self.verified.append(name)
        out = []
        for item in json["batch_input"]:
            try:
                self.key(name).public_key().verify(
                    base64.b64decode(item["signature"].split(":", 2)[2]),
                    base64.b64decode(item["input"]))
                out.append({"valid": True})
            except InvalidSignature:
                out.append({"valid": False})
        return {"data": {"batch_results": out}}


def test_a_new_signature_names_the_audit_key_and_verifies():
    vault = FakeVault()
    signer = TransitSigner(vault)  # type: ignore[arg-type]
    sig = signer.sign(b"hash")
    assert sig.startswith("transit:suite-audit:vault:v1:")
    assert split(sig)[0] == "suite-audit"
    assert signer.verify_many([(b"hash", sig), (b"other", sig)]) == [True, False]


def test_a_record_signed_before_the_split_verifies_with_suite_sign():
    vault = FakeVault()
    legacy = vault.sign_data("suite-sign", base64.b64encode(b"old").decode())["data"]["signature"]
    signer = TransitSigner(vault)  # type: ignore[arg-type]
    assert signer.verify_many([(b"old", legacy), (b"new", signer.sign(b"new"))]) == [True, True]
    assert sorted(vault.verified) == ["suite-audit", "suite-sign"]


def test_a_signature_by_another_purposes_key_does_not_count():
    vault = FakeVault()
    builder = TransitSigner(vault, key="suite-provenance")  # type: ignore[arg-type]
    forged = builder.sign(b"hash")  # a valid signature, but by the build identity's key
    assert TransitSigner(vault).verify_many([(b"hash", forged)]) == [False]  # type: ignore[arg-type]
    assert "suite-provenance" not in vault.verified


def test_a_login_that_fails_is_an_audit_error_when_signing():
    def login() -> Any:
        raise VaultError("AppRole login as suite-audit failed: ConnectionError")

    signer = TransitSigner(login)
    with pytest.raises(AuditError, match="audit identity cannot log in"):
        signer.sign(b"x")
