"""Provenance statement shape and the DSSE envelope, signed by a stand-in for Vault transit."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tasks import provenance as prov


class FakeTransit:
    """hvac's ``secrets.transit`` sign/verify with a local ed25519 key (same wire format)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()

    def sign_data(self, name: str, hash_input: str) -> dict[str, Any]:
        sig = self.key.sign(base64.b64decode(hash_input))
        return {"data": {"signature": "vault:v1:" + base64.b64encode(sig).decode()}}

    def verify_signed_data(self, name: str, hash_input: str, signature: str) -> dict[str, Any]:
        raw = base64.b64decode(signature.split(":", 2)[2])
        try:
            self.key.public_key().verify(raw, base64.b64decode(hash_input))
        except InvalidSignature:
            return {"data": {"valid": False}}
        return {"data": {"valid": True}}


class FakeVault:
    def __init__(self) -> None:
        self.secrets = type("S", (), {"transit": FakeTransit()})()


FACTS = prov.BuildFacts(
    repository="127.0.0.1:5000/suite/model-server", tag="abc123", digest="sha256:" + "a" * 64,
    dependencies=(prov.Dependency("git+file:///src@abc", {"gitCommit": "abc"}, "source"),
                  prov.Dependency("oci://r/base:bookworm", {"sha256": "b" * 64}, "base-image"),
                  prov.Dependency("file:x.lock", {"sha256": "c" * 64}, "lockfile")),
    external_parameters={"image": "x"}, builder_version={"ultimate-suite": "0.1.0"},
    started_on="2026-11-29T10:00:00+00:00", finished_on="2026-11-29T10:00:20+00:00",
    invocation_id="id-1",
)


def test_statement_is_in_toto_v1_with_slsa_v1_predicate() -> None:
    stmt = prov.statement(FACTS)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v1"
    assert stmt["subject"] == [{"name": FACTS.repository, "digest": {"sha256": "a" * 64},
                                "annotations": {"tag": "abc123"}}]
    build = stmt["predicate"]["buildDefinition"]
    assert [d["name"] for d in build["resolvedDependencies"]] == ["source", "base-image",
                                                                  "lockfile"]
    assert stmt["predicate"]["runDetails"]["builder"]["id"] == prov.BUILDER_ID


def test_pae_matches_the_dsse_spec_example() -> None:
    assert prov.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_signed_envelope_verifies() -> None:
    vault = FakeVault()
    env = prov.sign_envelope(vault, prov.statement(FACTS))
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == "vault-transit:suite-provenance:v1"
    assert prov.verify_envelope(vault, env) == (
        True, "signed by vault-transit:suite-provenance:v1")
    assert prov.payload_of(env)["subject"][0]["name"] == FACTS.repository


def test_envelope_signed_before_the_key_split_still_verifies() -> None:
    vault = FakeVault()
    env = prov.sign_envelope(vault, prov.statement(FACTS), key="suite-sign")
    assert prov.verify_envelope(vault, env) == (True, "signed by vault-transit:suite-sign:v1")


def test_envelope_signed_with_another_purposes_key_is_not_provenance() -> None:
    vault = FakeVault()
    env = prov.sign_envelope(vault, prov.statement(FACTS), key="suite-attest")
    ok, why = prov.verify_envelope(vault, env)
    assert not ok
    assert why == ("signed by vault-transit:suite-attest:v1, which is not a provenance key "
                   "(expected one of suite-provenance, suite-sign)")


def test_tampered_payload_fails_verification() -> None:
    vault = FakeVault()
    env = prov.sign_envelope(vault, prov.statement(FACTS))
    stmt = prov.payload_of(env)
    stmt["subject"][0]["digest"]["sha256"] = "f" * 64
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    ok, why = prov.verify_envelope(vault, env)
    assert not ok and "does not match the payload" in why


def test_malformed_envelopes_fail_with_a_reason() -> None:
    vault = FakeVault()
    assert prov.verify_envelope(vault, {})[1].startswith("envelope is malformed")
    good = prov.sign_envelope(vault, prov.statement(FACTS))
    assert "payloadType" in prov.verify_envelope(
        vault, {**good, "payloadType": "text/plain"})[1]
    assert prov.verify_envelope(vault, {**good, "signatures": []})[1] == \
        "envelope has no signatures"
    assert "unknown key id" in prov.verify_envelope(
        vault, {**good, "signatures": [{"keyid": "x", "sig": "y"}]})[1]
