"""Model attestations: the check of the file about to be mounted against the signed statement
(a stand-in for Vault transit signs, as in test_provenance)."""

from __future__ import annotations

import json

import pytest

from tasks import evidence_model as em
from tasks import provenance as prov
from tests.unit.supply.test_provenance import FakeVault

DIGEST = "sha256:" + "a1" * 32
FACTS = em.ModelFacts(name="digits", version="3", run_id="run-3", digest=DIGEST,
                      git_sha="c" * 40, data_digest="sha256:" + "d" * 64, kind="sklearn-logreg")


def _tag(vault: FakeVault, facts: em.ModelFacts = FACTS) -> str:
    return json.dumps(em.sign(vault, facts))


def _check(vault: FakeVault, raw: str | None, **over: str) -> em.VerifyReport:
    args = {"name": "digits", "version": "3", "run_id": "run-3", "digest": DIGEST, **over}
    return em.check(vault, raw, **args)


def _failed(report: em.VerifyReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def test_statement_is_in_toto_v1_naming_the_version_and_the_file_digest() -> None:
    stmt = em.statement(FACTS, attested_on="2026-12-02T20:00:00+00:00")
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == em.PREDICATE_TYPE
    assert stmt["subject"] == [{"name": "models:/digits/3", "digest": {"sha256": "a1" * 32},
                                "annotations": {"file": "model.onnx"}}]
    assert stmt["predicate"]["model"] == {"name": "digits", "version": "3", "runId": "run-3"}
    assert stmt["predicate"]["training"]["gitCommit"] == "c" * 40


def test_the_attested_file_is_admitted() -> None:
    vault = FakeVault()
    report = _check(vault, _tag(vault))
    assert report.ok, report.failures
    assert [c.name for c in report.checks] == ["signature", "statement", "subject", "digest",
                                               "run"]
    assert report.checks[0].detail == "signed by vault-transit:suite-attest:v1"


def test_a_swapped_file_is_refused_naming_both_digests() -> None:
    vault = FakeVault()
    swapped = "sha256:" + "ee" * 32
    failed = _failed(_check(vault, _tag(vault), digest=swapped))
    assert list(failed) == ["digest"]
    assert f"the file to mount has {swapped}" in failed["digest"]
    assert f"attestation signed {DIGEST}" in failed["digest"]


def test_a_missing_attestation_is_refused_saying_how_to_get_one() -> None:
    for raw in (None, ""):
        report = _check(FakeVault(), raw)
        assert not report.ok
        assert "models:/digits/3 has no attestation (model version tag 'suite.attestation')" \
            in report.failures[0]
        assert "train a new version" in report.failures[0]


def test_a_wrong_signature_is_refused_and_nothing_it_says_counts() -> None:
    forger, vault = FakeVault(), FakeVault()  # same key id, another private key
    report = _check(vault, _tag(forger))
    failed = _failed(report)
    assert list(failed) == ["signature"]
    assert "does not match the payload" in failed["signature"]
    assert all(c.detail.startswith("(unverified)") for c in report.checks[1:])


def test_a_statement_edited_after_signing_is_refused() -> None:
    vault = FakeVault()
    envelope = em.sign(vault, FACTS)
    stmt = prov.payload_of(envelope)
    stmt["subject"][0]["digest"] = {"sha256": "ee" * 32}
    envelope["payload"] = prov._b64(json.dumps(stmt).encode())
    failed = _failed(_check(vault, json.dumps(envelope), digest="sha256:" + "ee" * 32))
    assert list(failed) == ["signature"]


def test_a_signature_by_another_purposes_key_is_refused() -> None:
    vault = FakeVault()  # e.g. the build identity signs arbitrary bytes with its own key
    envelope = prov.sign_envelope(vault, em.statement(FACTS), key="suite-provenance")
    failed = _failed(_check(vault, json.dumps(envelope)))
    assert failed["signature"] == ("signed by vault-transit:suite-provenance:v1, which is not a "
                                   "model attestation key (expected one of suite-attest)")


@pytest.mark.parametrize(("over", "name", "says"), [
    ({"version": "4"}, "subject", "the attestation is for models:/digits/3, not models:/digits/4"),
    ({"name": "other"}, "subject", "not models:/other/3"),
    ({"run_id": "run-9"}, "run", "attested for run run-3, but models:/digits/3 comes from run "
                                 "run-9"),
])
def test_another_versions_attestation_is_refused(over: dict[str, str], name: str,
                                                 says: str) -> None:
    vault = FakeVault()
    failed = _failed(_check(vault, _tag(vault), **over))
    assert name in failed and says in failed[name], failed


@pytest.mark.parametrize("raw", ["not json", "{}", json.dumps({"payload": "!!"})])
def test_a_tag_that_is_no_envelope_is_refused(raw: str) -> None:
    report = _check(FakeVault(), raw)
    assert not report.ok
    assert "is not a DSSE envelope of an in-toto statement" in report.failures[0]
