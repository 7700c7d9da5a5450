"""Model attestations: the ONNX file's digest, signed at training, checked before it is mounted.

The train stage, once MLflow has registered a version, signs an in-toto Statement v1 whose
subject is ``models:/NAME/VERSION`` with the sha256 of the ONNX file, and whose predicate names
the model, the MLflow run and the training commit. The envelope is DSSE (as build provenance,
:mod:`tasks.provenance`), signed by transit key ``suite-attest``, which only the trainer's
AppRole (``suite-trainer``) may sign with; it is kept beside the version as the model version
tag :data:`TAG`. Before a release mounts a model file into a replica, :func:`admit_model` checks
the exact file about to be mounted against it: a missing or unsigned attestation, one signed
with another key, one for another model, version or run, or a file whose digest is not the
signed one is refused with an ``admission.refused`` audit record naming each failed check.

Writing to MLflow is not enough to get a model mounted: a swapped file, a forged tag, or a
version registered outside the train stage has no valid signature by the trainer's key.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac

from suite import audit
from suite.errors import DeployError, ProviderError
from suite.settings import Settings
from suite.vault_policy import SIGNERS, Purpose
from tasks import provenance as prov
from tasks.artifacts import sha256_file
from tasks.evidence import Check, VerifyReport

KEY = SIGNERS[Purpose.ATTESTATION].key
#: only the attestation key counts: no model was ever attested with the legacy key
VERIFY_KEYS = (KEY,)
PREDICATE_TYPE = "urn:ultimate-suite:model-attestation:v1"
ATTESTER_ID = "urn:ultimate-suite:trainer"
#: the model version tag that holds the DSSE envelope (compact JSON)
TAG = "suite.attestation"
WHAT = "model attestation"
ACTOR = "admission"


@dataclass(frozen=True)
class ModelFacts:
    """What the train stage knows once MLflow has registered the version."""

    name: str
    version: str
    run_id: str
    digest: str  # sha256:… of the ONNX file
    git_sha: str
    data_digest: str = ""
    kind: str = ""


def subject_name(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


def statement(facts: ModelFacts, attested_on: str | None = None) -> dict[str, Any]:
    algo, _, value = facts.digest.partition(":")
    return {
        "_type": prov.STATEMENT_TYPE,
        "subject": [{"name": subject_name(facts.name, facts.version), "digest": {algo: value},
                     "annotations": {"file": "model.onnx"}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "attester": {"id": ATTESTER_ID},
            "model": {"name": facts.name, "version": facts.version, "runId": facts.run_id},
            "training": {"gitCommit": facts.git_sha, "dataDigest": facts.data_digest,
                         "kind": facts.kind},
            "attestedOn": attested_on or datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def sign(vault: hvac.Client, facts: ModelFacts) -> dict[str, Any]:
    """The DSSE envelope of :func:`statement`, signed with ``suite-attest`` (``vault`` must be
    the trainer's client: :func:`suite.vault.signer_client` for ``Purpose.ATTESTATION``)."""
    return prov.sign_envelope(vault, statement(facts), key=KEY, what=WHAT)


def _check_statement(stmt: dict[str, Any], name: str, version: str, run_id: str,
                     digest: str) -> list[Check]:
    kinds_ok = (stmt.get("_type") == prov.STATEMENT_TYPE
                and stmt.get("predicateType") == PREDICATE_TYPE)
    checks = [Check("statement", kinds_ok,
                    f"_type {stmt.get('_type')!r}, predicateType {stmt.get('predicateType')!r}"
                    + ("" if kinds_ok else f" (expected {prov.STATEMENT_TYPE!r}, "
                                           f"{PREDICATE_TYPE!r})"))]
    want_name = subject_name(name, version)
    subjects = [s for s in stmt.get("subject") or [] if isinstance(s, dict)]
    names = [str(s.get("name")) for s in subjects]
    checks.append(Check("subject", want_name in names,
                        want_name if want_name in names else
                        f"the attestation is for {', '.join(names) or 'nothing'}, not "
                        f"{want_name}"))
    algo, _, value = digest.partition(":")
    signed = [f"{k}:{v}" for s in subjects if s.get("name") == want_name
              for k, v in (s.get("digest") or {}).items()]
    same = {algo: value} in [s.get("digest") for s in subjects if s.get("name") == want_name]
    checks.append(Check("digest", same,
                        f"model.onnx has {digest}" if same else
                        f"the file to mount has {digest}, but the attestation signed "
                        f"{', '.join(signed) or 'no digest'}: the file was swapped or changed "
                        f"after training"))
    model = (stmt.get("predicate") or {}).get("model") or {}
    got_run = str(model.get("runId", ""))
    checks.append(Check("run", got_run == run_id,
                        f"MLflow run {run_id}" if got_run == run_id else
                        f"attested for run {got_run or '(none)'}, but {want_name} comes from "
                        f"run {run_id}"))
    return checks


def check(vault: hvac.Client, raw: str | None, *, name: str, version: str, run_id: str,
          digest: str) -> VerifyReport:
    """Every check of the attestation ``raw`` (the tag's value, None when absent) against the
    file digest about to be mounted, passed or failed."""
    subject = subject_name(name, version)
    if not raw:
        return VerifyReport(subject, digest, (Check(
            "attestation", False,
            f"{subject} has no attestation (model version tag {TAG!r}): it was not registered "
            f"by the suite's train stage, or the tag was removed; train a new version "
            f"(`prefect deployment run train/train`)"),))
    try:
        envelope = json.loads(raw)
        stmt = prov.payload_of(envelope)
    except (KeyError, TypeError, ValueError) as exc:
        return VerifyReport(subject, digest, (Check(
            "attestation", False, f"the {TAG!r} tag of {subject} is not a DSSE envelope of an "
                                  f"in-toto statement ({type(exc).__name__})"),))
    valid, why = prov.verify_envelope(vault, envelope, keys=VERIFY_KEYS, what=WHAT)
    content = _check_statement(stmt, name, version, run_id, digest)
    if not valid:  # what an unsigned payload says proves nothing: say so on every line
        content = [Check(c.name, c.ok, f"(unverified) {c.detail}") for c in content]
    return VerifyReport(subject, digest, (Check("signature", valid, why), *content))


# -- the registry side: attest at training, read before a mount --------------------------------
def attest(settings: Settings, facts: ModelFacts, *, vault: hvac.Client | None = None
           ) -> dict[str, Any]:
    """Sign ``facts`` and keep the envelope as the version's :data:`TAG` tag, after checking
    that the file MLflow now serves for the version is the one trained (``facts.digest``)."""
    from models.registry.store import client, download_onnx

    with tempfile.TemporaryDirectory(prefix="attest-") as tmp:
        served = sha256_file(download_onnx(settings.mlflow_uri, facts.name, facts.version,
                                           Path(tmp)))
    if served != facts.digest:
        raise ProviderError(
            f"{subject_name(facts.name, facts.version)}: MLflow serves an ONNX file with "
            f"{served}, but the trained file has {facts.digest}; not attesting it (the version "
            f"stays unattested and no release mounts it)")
    if vault is None:
        from suite import vault as vault_mod

        vault = vault_mod.signer_client(settings, Purpose.ATTESTATION)
    envelope = sign(vault, facts)
    client(settings.mlflow_uri).set_model_version_tag(
        facts.name, facts.version, TAG, json.dumps(envelope, separators=(",", ":")))
    return envelope


def verify_file(settings: Settings, name: str, version: str, path: Path, *,
                vault: hvac.Client | None = None) -> VerifyReport:
    """:func:`check` of the file at ``path`` against the attestation of ``name`` ``version``
    as MLflow holds it now."""
    from models.registry.store import client, get_version

    found = get_version(client(settings.mlflow_uri), name, version)
    if vault is None:
        from suite import vault as vault_mod

        vault = vault_mod.client(settings)  # verifying is allowed to every identity
    return check(vault, (found.tags or {}).get(TAG), name=name, version=version,
                 run_id=str(found.run_id or ""), digest=sha256_file(path))


def admit_model(settings: Settings, name: str, version: str, path: Path, *,
                vault: hvac.Client | None = None, release: str = "",
                service: str = "") -> VerifyReport:
    """:func:`verify_file`, and on any failure an ``admission.refused`` record and a
    DeployError naming each failed check."""
    report = verify_file(settings, name, version, path, vault=vault)
    if report.ok:
        return report
    audit.append(settings, actor=ACTOR, action="admission.refused", subject=report.image,
                 inputs={"model": name, "version": version, "file": str(path),
                         "digest": report.digest, "service": service, "release": release,
                         "failed": report.failures},
                 outcome="refused")
    raise DeployError(f"{report.image} is not admitted for mounting"
                      + (f" in release {release} of {service}" if release else "")
                      + ": " + "; ".join(report.failures))
