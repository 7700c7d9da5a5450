"""Build evidence next to the image: CycloneDX SBOM and signed SLSA provenance, and their check.

Stored in the registry next to the image as OCI artifacts (tags ``sha256-<hex>.att`` and
``.sbom``, see :mod:`tasks.evidence_oci`) and under ``<SUITE_HOME>/evidence/<digest>/``
(``sbom.cdx.json``, ``provenance.dsse.json``), with ``evidence/index.json`` mapping each
``repository:tag`` the suite pushed to the digest it pushed, so a tag that was later moved to
another image is named as such by ``suite verify``. Verification reads the local copy, or the
registry's when there is none (another machine), and fails if the two differ.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac

from suite import engine as engine_mod
from suite.errors import ProviderError
from suite.platform.files import atomic_write, exclusive
from suite.settings import Settings
from suite.vault import Purpose, signer_client
from tasks import evidence_oci
from tasks import provenance as prov
from tasks.artifacts import BuildResult, sha256_file, suite_version
from tasks.scanners import trivy_config
from tasks.scanners.trivy import run_sbom

SBOM = "sbom.cdx.json"
PROVENANCE = "provenance.dsse.json"


@dataclass(frozen=True)
class Evidence:
    directory: Path
    sbom: Path
    provenance: Path
    sbom_components: int
    registry_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    image: str
    digest: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


def evidence_root(settings: Settings) -> Path:
    return settings.dir("evidence")


def evidence_dir(settings: Settings, digest: str) -> Path:
    return evidence_root(settings) / digest


def _index_path(settings: Settings) -> Path:
    return evidence_root(settings) / "index.json"


def read_index(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(_index_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def facts_for(result: BuildResult, sbom: Path) -> prov.BuildFacts:
    return prov.BuildFacts(
        repository=result.image.repository,
        tag=result.image.tag,
        digest=result.image.digest,
        dependencies=(
            prov.Dependency(f"git+file://{result.repo_root}@{result.git_sha}",
                            {"gitCommit": result.git_sha}, name="source"),
            prov.Dependency(f"oci://{result.base.registry_ref}",
                            _digest_map(result.base.digest), name="base-image"),
            prov.Dependency(f"file:{result.lockfile}", _digest_map(result.lockfile_digest),
                            name="lockfile"),
        ),
        external_parameters={"image": result.image.ref, "gitSha": result.git_sha,
                             "gitDirty": result.git_dirty, "lockfile": result.lockfile},
        builder_version={"ultimate-suite": suite_version(), **result.engine_version},
        started_on=result.started_on,
        finished_on=result.finished_on,
        invocation_id=result.invocation_id,
        byproducts=(prov.Dependency(f"file:{SBOM}", _digest_map(sha256_file(sbom)),
                                    name="sbom"),),
    )


def _digest_map(digest: str) -> dict[str, str]:
    algo, _, value = digest.partition(":")
    return {algo: value}


def write_evidence(settings: Settings, result: BuildResult, vault: hvac.Client) -> Evidence:
    """SBOM (Trivy, from the pushed digest) + signed provenance, stored by digest."""
    directory = evidence_dir(settings, result.image.digest)
    directory.mkdir(parents=True, exist_ok=True)
    # two releases can build the same digest at once (identical sources, two services): their
    # SBOM, provenance and index writes take turns, so neither reads the other's half-written
    # SBOM and the provenance names the SBOM that is on disk
    with exclusive(directory / ".lock"):
        return _write_evidence(settings, result, vault, directory)


def _write_evidence(settings: Settings, result: BuildResult, vault: hvac.Client,
                    directory: Path) -> Evidence:
    sbom = run_sbom(trivy_config(settings), result.image.pinned, directory / SBOM)
    try:
        components = len(json.loads(sbom.read_text()).get("components") or [])
    except ValueError as exc:
        raise ProviderError(f"trivy wrote an SBOM that is not JSON: {exc}") from exc
    # signed by the build identity, the only one that may use the provenance key
    envelope = prov.sign_envelope(signer_client(settings, Purpose.PROVENANCE),
                                  prov.statement(facts_for(result, sbom)))
    atomic_write(directory / PROVENANCE, json.dumps(envelope, indent=2))
    tags = tuple(
        evidence_oci.push_artifact(result.image.repository, result.image.digest, kind,
                                   path.read_bytes(), auth=engine_mod.registry_login(
                                       settings, result.image.repository, "builder"))
        for kind, path in (("att", directory / PROVENANCE), ("sbom", sbom))
    )
    with exclusive(evidence_root(settings) / ".index.lock"):  # no lost update of the index
        index = read_index(settings)
        index[result.image.ref] = result.image.digest
        atomic_write(_index_path(settings), json.dumps(index, indent=2, sort_keys=True))
    return Evidence(directory, sbom, directory / PROVENANCE, components, tags)


# -- verification ------------------------------------------------------------------------------
def resolve(settings: Settings, image: str) -> tuple[str, str, str]:
    """(repository, tag or '', digest the registry serves) for ``image``."""
    repository, reference = engine_mod.split_ref(image)
    digest = engine_mod.registry_digest(
        repository, reference, auth=engine_mod.registry_login(settings, repository, "puller"))
    tag = "" if reference.startswith("sha256:") else reference
    return repository, tag, digest


def _check_source(deps: dict[Any, Any], commit: str, source: str) -> Check:
    """The image was built from ``source`` (the release's checkout of the registered
    repository) at ``commit``: what the signed provenance says, not what the tag suggests."""
    dep = deps.get("source") or {}
    got_commit = str((dep.get("digest") or {}).get("gitCommit", ""))
    got_uri = str(dep.get("uri", ""))
    want_uri = f"git+file://{source}@{commit}" if source else ""
    problems = []
    if commit and got_commit != commit:
        problems.append(f"built from commit {got_commit[:12] or '(none)'}, not the release's "
                        f"{commit[:12]}")
    if want_uri and got_uri != want_uri:
        problems.append(f"built from {got_uri or '(no source)'}, not the registered "
                        f"repository's checkout {want_uri}")
    if problems:
        return Check("source", False, "; ".join(problems))
    return Check("source", True, f"commit {got_commit[:12]} of {source or got_uri}")


def _check_statement(stmt: dict[str, Any], repository: str, digest: str, commit: str = "",
                     source: str = "") -> list[Check]:
    checks: list[Check] = []
    kinds_ok = (stmt.get("_type") == prov.STATEMENT_TYPE
                and stmt.get("predicateType") == prov.PREDICATE_TYPE)
    checks.append(Check("statement", kinds_ok,
                        f"_type {stmt.get('_type')!r}, predicateType {stmt.get('predicateType')!r}"
                        + ("" if kinds_ok else f" (expected {prov.STATEMENT_TYPE!r}, "
                                               f"{prov.PREDICATE_TYPE!r})")))
    subjects = stmt.get("subject") or []
    want = _digest_map(digest)
    match = [s for s in subjects if s.get("digest") == want]
    named = [s for s in match if s.get("name") == repository]
    if named:
        checks.append(Check("subject", True, f"{repository}@{digest}"))
    else:
        seen = ", ".join(f"{s.get('name')}@{s.get('digest')}" for s in subjects) or "none"
        checks.append(Check("subject", False, f"provenance is for {seen}, not "
                                              f"{repository}@{digest}"))
    pred = stmt.get("predicate") or {}
    builder = ((pred.get("runDetails") or {}).get("builder") or {})
    checks.append(Check("builder", builder.get("id") == prov.BUILDER_ID,
                        f"builder {builder.get('id')!r} version {builder.get('version')}"))
    deps = {d.get("name"): d for d in
            (pred.get("buildDefinition") or {}).get("resolvedDependencies") or []}
    missing = [n for n in ("source", "base-image", "lockfile") if not (deps.get(n) or {}).get(
        "digest")]
    checks.append(Check("materials", not missing,
                        f"missing {missing}" if missing else
                        "git " + str(deps["source"]["digest"].get("gitCommit", ""))[:12]
                        + ", base " + str(deps["base-image"]["digest"])
                        + ", lockfile " + str(deps["lockfile"]["digest"])))
    if commit or source:
        checks.append(_check_source(deps, commit, source))
    return checks


def _check_sbom(stmt: dict[str, Any], directory: Path, repository: str, digest: str,
                auth: tuple[str, str] | None = None) -> Check:
    byproducts = ((stmt.get("predicate") or {}).get("runDetails") or {}).get("byproducts") or []
    want = next((b.get("digest") for b in byproducts if b.get("name") == "sbom"), None)
    path = directory / SBOM
    if want is None:
        return Check("sbom", False, "provenance names no SBOM byproduct")
    data = path.read_bytes() if path.exists() else evidence_oci.fetch_artifact(
        repository, digest, "sbom", auth=auth)
    if data is None:
        return Check("sbom", False, f"SBOM missing at {path} and in the registry")
    got = {"sha256": hashlib.sha256(data).hexdigest()}
    return Check("sbom", got == want, f"SBOM sha256 {got['sha256'][:16]}…"
                 + ("" if got == want else f" != signed {want}"))


def verify_image(settings: Settings, image: str, vault: hvac.Client, *, commit: str = "",
                 source: str = "") -> VerifyReport:
    """Check that ``image``'s registry digest has evidence, a valid signature and provenance
    naming that very digest; every mismatch becomes a failed check with its reason. With
    ``commit`` (and ``source``), the provenance must also say it was built from that commit (of
    that checkout): the admission of a release (:mod:`tasks.admission`)."""
    repository, tag, digest = resolve(settings, image)
    checks: list[Check] = []
    built = read_index(settings).get(f"{repository}:{tag}") if tag else None
    if built and built != digest:
        checks.append(Check("digest", False, f"{repository}:{tag} now points to {digest}, but "
                                             f"the suite built and pushed it as {built} "
                                             f"(re-tagged or overwritten)"))
    else:
        checks.append(Check("digest", True, f"registry serves {digest}"))
    directory = evidence_dir(settings, digest)
    path = directory / PROVENANCE
    pull = engine_mod.registry_login(settings, repository, "puller")
    stored = evidence_oci.fetch_artifact(repository, digest, "att", auth=pull)
    local = path.read_bytes() if path.exists() else None
    raw = local if local is not None else stored
    if raw is None:
        checks.append(Check("provenance", False, f"no provenance for {digest} (neither at "
                                                 f"{path} nor in the registry as "
                                                 f"{evidence_oci.artifact_tag(digest, 'att')}): "
                                                 f"not built by the suite, or re-tagged"))
        return VerifyReport(image, digest, tuple(checks))
    if local is not None and stored is not None:
        same = local == stored
        checks.append(Check("stored", same, "local evidence matches the registry copy" if same
                            else f"{path} differs from the registry copy "
                                 f"{evidence_oci.artifact_tag(digest, 'att')}"))
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        checks.append(Check("provenance", False, f"provenance for {digest} is not JSON: {exc}"))
        return VerifyReport(image, digest, tuple(checks))
    valid, why = prov.verify_envelope(vault, envelope)
    checks.append(Check("signature", valid, why))
    try:
        stmt = prov.payload_of(envelope)
    except (KeyError, ValueError, TypeError) as exc:
        checks.append(Check("provenance", False, f"payload is not an in-toto statement: {exc}"))
        return VerifyReport(image, digest, tuple(checks))
    content = [*_check_statement(stmt, repository, digest, commit, source),
               _check_sbom(stmt, directory, repository, digest, pull)]
    if not valid:  # what an unsigned payload says proves nothing: say so on every line
        content = [Check(c.name, c.ok, f"(unverified) {c.detail}") for c in content]
    checks += content
    return VerifyReport(image, digest, tuple(checks))

