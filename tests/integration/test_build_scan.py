"""Build, evidence, verify and scan through the real engine, registry, Vault and Trivy.

The base rootfs (debootstrap, ~60 s) is cached in ``settings.image_cache`` across runs; image
layers are per platform, so the first model-server build of a session is a cold one (~20 s).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import docker
import pytest

from policies import scan as scan_policy
from suite import engine as engine_mod
from suite import vault
from suite.errors import GateBlocked, ProviderError
from suite.platform import credentials
from suite.settings import Settings
from tasks import build, evidence, evidence_oci, scan
from tasks.images import base as base_image
from tasks.scanners.base import DbStatus, ScanKind, Severity

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None,
                       reason="podman is not installed: apt-get install podman buildah runc"),
    pytest.mark.skipif(shutil.which("debootstrap") is None,
                       reason="debootstrap is not installed: apt-get install debootstrap"),
]

FAKE_AWS_KEY = "AKIA" + "QYLPMN5HHHFPZAM2"  # split so the repo scan does not flag this file
SECRET_FILE = f"""# planted for the scan test
AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}
AWS_SECRET_ACCESS_KEY={"1tUm636uS1yOEcfP5pvf" + "qJ/ml36mF7AkyHsEU0IU"}
"""
ROOT_DOCKERFILE = """ARG BASE_IMAGE=localhost/suite-base:bookworm
FROM ${BASE_IMAGE}
COPY config.env /app/config.env
CMD ["python3", "-c", "print('hello')"]
"""


def pull(platform: Settings) -> tuple[str, str]:
    """The registry's read-only login (it answers nobody without one)."""
    return credentials.registry_login(platform, "puller")


@pytest.fixture(scope="module")
def engine(platform: Settings) -> docker.DockerClient:
    return engine_mod.client(platform)


@pytest.fixture(scope="module")
def base(platform: Settings, engine: docker.DockerClient) -> base_image.BaseImage:
    return base_image.ensure_base(platform, engine)


@pytest.fixture(scope="module")
def built(platform: Settings, base: base_image.BaseImage) -> build.BuildResult:
    result = build.build_image(platform)
    evidence.write_evidence(platform, result, vault.client(platform))
    return result


@pytest.fixture(scope="module")
def planted(platform: Settings, engine: docker.DockerClient, base: base_image.BaseImage,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An image with a secret in a file and no USER (runs as root), pushed; and its context."""
    ctx = tmp_path_factory.mktemp("planted")
    (ctx / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (ctx / "config.env").write_text(SECRET_FILE)
    repo = f"{engine_mod.registry_address(platform)}/suite/planted"
    engine_mod.build(engine, context=ctx, dockerfile="Dockerfile", tag=f"{repo}:v1",
                     buildargs={"BASE_IMAGE": base.local_ref})
    engine_mod.push(engine, repo, "v1", auth=credentials.docker_auth(platform, "builder"))
    return f"{repo}:v1", ctx


# -- build -----------------------------------------------------------------------------------
def test_base_image_is_cached_in_engine_and_registry(
    platform: Settings, engine: docker.DockerClient, base: base_image.BaseImage
) -> None:
    again = base_image.ensure_base(platform, engine)
    assert again == base
    repo, tag = engine_mod.split_ref(base.registry_ref)
    assert engine_mod.registry_digest(repo, tag, auth=pull(platform)) == base.digest


def test_suite_images_base_cli_uses_the_cache(
    platform_env: dict[str, str], base: base_image.BaseImage
) -> None:
    proc = subprocess.run([sys.executable, "-m", "suite.cli", "images", "base"], env=platform_env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    # progress goes to stderr (one plain line per step off a terminal), the result to stdout
    assert f"base image cached: {base.local_ref} = {base.pinned}" in proc.stderr
    assert f"base image {base.local_ref} = {base.pinned}" in proc.stdout


def test_build_pushes_image_tagged_with_git_sha(
    platform: Settings, built: build.BuildResult
) -> None:
    assert len(built.git_sha) == 40
    assert built.image.tag == built.git_sha[:12]
    assert built.image.repository.endswith("/suite/model-server")
    assert engine_mod.registry_digest(built.image.repository, built.image.tag,
                                      auth=pull(platform)) == built.image.digest


def test_image_runs_as_non_root_without_the_build_ca(
    engine: docker.DockerClient, built: build.BuildResult
) -> None:
    attrs = engine.images.get(built.image.ref).attrs
    assert attrs["Config"]["User"] == "10001:10001"
    out = engine.containers.run(
        built.image.ref, entrypoint=["python", "-c",
                                     "import os; print(os.getuid(), "
                                     "os.path.exists('/run/build-ca.crt'))"],
        remove=True, network_mode="none",
    )
    assert out.decode().split() == ["10001", "False"]


def test_code_only_change_reuses_dependency_layers(
    platform: Settings, engine: docker.DockerClient, built: build.BuildResult,
    tmp_path: Path,
) -> None:
    """(Built after the session's model-server image, so the dependency layers are cached.)"""
    repo = tmp_path / "repo"
    (repo / "models" / "serve").mkdir(parents=True)
    (repo / "models" / "__init__.py").write_text("")
    (repo / "models" / "serve" / "__main__.py").write_text("print('v1')\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    spec = build.BuildSpec(repo_root=repo)
    first = build.build_image(platform, spec, engine=engine, tag="code-v1")
    (repo / "models" / "serve" / "__main__.py").write_text("print('v2')\n")
    warm = build.build_image(platform, spec, engine=engine, tag="code-v2")
    before = engine.images.get(first.image.ref).attrs["RootFS"]["Layers"]
    after = engine.images.get(warm.image.ref).attrs["RootFS"]["Layers"]
    assert len(before) == len(after)
    assert before[:-1] == after[:-1], "dependency layers were rebuilt"
    assert before[-1] != after[-1]
    assert first.image.digest != warm.image.digest
    assert warm.seconds < 15


def test_push_error_in_stream_fails(engine: docker.DockerClient, base: base_image.BaseImage
                                    ) -> None:
    engine.images.get(base.local_ref).tag("127.0.0.1:9/nowhere/base", "x")
    with pytest.raises(ProviderError, match=r"push of 127\.0\.0\.1:9/nowhere/base:x failed"):
        engine_mod.push(engine, "127.0.0.1:9/nowhere/base", "x")


# -- evidence and verify -----------------------------------------------------------------------
def test_evidence_has_cyclonedx_sbom_and_slsa_provenance(
    platform: Settings, built: build.BuildResult
) -> None:
    directory = evidence.evidence_dir(platform, built.image.digest)
    sbom = json.loads((directory / evidence.SBOM).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    names = {c.get("name") for c in sbom["components"]}
    assert {"onnxruntime", "numpy"} <= names
    envelope = json.loads((directory / evidence.PROVENANCE).read_text())
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"][0]["digest"]["sha256"] == built.image.digest.split(":")[1]
    deps = {d["name"]: d for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["source"]["digest"]["gitCommit"] == built.git_sha
    assert deps["base-image"]["digest"]["sha256"] == built.base.digest.split(":")[1]
    assert deps["lockfile"]["digest"]["sha256"] == built.lockfile_digest.split(":")[1]
    assert stmt["predicate"]["runDetails"]["builder"]["version"]["engine"]
    # the same documents are in the registry, next to the image
    repo, digest = built.image.repository, built.image.digest
    assert evidence_oci.fetch_artifact(repo, digest, "att", auth=pull(platform)) == \
        (directory / evidence.PROVENANCE).read_bytes()
    assert evidence_oci.fetch_artifact(repo, digest, "sbom", auth=pull(platform)) == \
        (directory / evidence.SBOM).read_bytes()


def test_verify_works_from_the_registry_copy_alone(
    platform: Settings, built: build.BuildResult, tmp_path: Path
) -> None:
    elsewhere = Settings(home=tmp_path, ports=platform.ports)  # another machine: no local files
    # ... but the registry's read-only login, without which the registry answers 401
    secret = credentials.path(platform, "registry-puller")
    credentials.path(elsewhere, "registry-puller").parent.mkdir(mode=0o700, parents=True)
    shutil.copy2(secret, credentials.path(elsewhere, "registry-puller"))
    vault_client = vault.client(platform)
    report = evidence.verify_image(elsewhere, built.image.pinned, vault_client)
    assert report.ok, report.failures


def _verify_cli(env: dict[str, str], image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "suite.cli", "verify", image], env=env,
                          capture_output=True, text=True, check=False)


def test_suite_verify_passes_on_built_image(
    platform_env: dict[str, str], built: build.BuildResult
) -> None:
    proc = _verify_cli(platform_env, built.image.ref)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"verified {built.image.ref} = {built.image.digest}" in proc.stdout


@pytest.fixture()
def provenance_file(platform: Settings, built: build.BuildResult) -> Iterator[Path]:
    path = evidence.evidence_dir(platform, built.image.digest) / evidence.PROVENANCE
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


def test_suite_verify_fails_on_tampered_provenance(
    platform_env: dict[str, str], built: build.BuildResult, provenance_file: Path
) -> None:
    envelope = json.loads(provenance_file.read_text())
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    stmt["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = \
        "0" * 40
    envelope["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    provenance_file.write_text(json.dumps(envelope))
    proc = _verify_cli(platform_env, built.image.ref)
    assert proc.returncode != 0
    assert "signature" in proc.stderr and "does not match the payload" in proc.stderr


def test_verify_fails_on_retagged_image(
    platform: Settings, engine: docker.DockerClient, built: build.BuildResult,
    planted: tuple[str, Path], platform_env: dict[str, str],
) -> None:
    other = build.build_image(platform, engine=engine, tag="retag-me")
    evidence.write_evidence(platform, other, vault.client(platform))
    assert evidence.verify_image(platform, other.image.ref, vault.client(platform)).ok
    engine.images.get(planted[0]).tag(other.image.repository, "retag-me")
    engine_mod.push(engine, other.image.repository, "retag-me",
                    auth=credentials.docker_auth(platform, "builder"))
    proc = _verify_cli(platform_env, other.image.ref)
    assert proc.returncode != 0
    assert "re-tagged" in proc.stderr
    assert other.image.digest in proc.stderr


def test_the_build_pins_the_pushed_digest_and_refuses_a_tag_moved_after_its_push(
    platform: Settings, engine: docker.DockerClient, built: build.BuildResult,
    planted: tuple[str, Path],
) -> None:
    """The build's digest is the one its push reported; the registry's answer for the tag is
    only a cross-check, which passes while nobody pushed in between and refuses, naming both
    digests, once a look-alike lands under the tag right after the push."""
    repo, tag = built.image.repository, "raced"
    engine.images.get(built.image.ref).tag(repo, tag)
    builder = credentials.docker_auth(platform, "builder")
    pushed = engine_mod.pushed_digest(engine_mod.push(engine, repo, tag, auth=builder),
                                      repo, tag)
    assert pushed == built.image.digest  # what build_image pinned is the push's digest
    assert engine_mod.cross_check(repo, tag, pushed, auth=pull(platform)) == pushed
    engine.images.get(planted[0]).tag(repo, tag)
    engine_mod.push(engine, repo, tag, auth=builder)
    moved = engine_mod.registry_digest(repo, tag, auth=pull(platform))
    with pytest.raises(ProviderError, match="pushed over it") as refused:
        engine_mod.cross_check(repo, tag, pushed, auth=pull(platform))
    assert pushed in str(refused.value) and moved in str(refused.value)


def test_admission_runs_the_pushed_digest_and_refuses_a_look_alike(
    platform: Settings, engine: docker.DockerClient, built: build.BuildResult,
    planted: tuple[str, Path],
) -> None:
    """The build's push reports its digest; a look-alike then pushed under the same tag moves
    the tag, not what the release runs: the pushed digest is admitted, the tag's new target is
    refused (no provenance) with an admission.refused record, and so is the build's own image
    for another commit or checkout."""
    from suite import audit
    from suite.errors import DeployError
    from tasks import admission

    repo, tag = built.image.repository, "lookalike"
    engine.images.get(built.image.ref).tag(repo, tag)
    pushed = engine_mod.pushed_digest(
        engine_mod.push(engine, repo, tag, auth=credentials.docker_auth(platform, "builder")),
        repo, tag)
    assert pushed == built.image.digest  # the same image: its signed provenance applies
    # ... and before the deploy, someone with push rights plants another image under the tag
    engine.images.get(planted[0]).tag(repo, tag)
    engine_mod.push(engine, repo, tag, auth=credentials.docker_auth(platform, "builder"))
    moved = engine_mod.registry_digest(repo, tag, auth=pull(platform))
    assert moved != pushed
    commit, source = built.git_sha, built.repo_root
    ok = admission.check(platform, f"{repo}@{pushed}", commit=commit, source=source)
    assert ok.ok, ok.failures
    assert any(c.name == "source" and c.ok for c in ok.checks)
    by_tag = admission.check(platform, f"{repo}:{tag}", commit=commit, source=source)
    assert not by_tag.ok and "names no digest" in by_tag.failures[0]
    seen = len(audit.trail(platform).records())
    with pytest.raises(DeployError, match="not admitted") as refused:
        admission.admit(platform, f"{repo}@{moved}", service="model-server", release="r-la",
                        commit=commit, source=source)
    assert "no provenance" in str(refused.value)
    records = audit.trail(platform).records()[seen:]
    assert [(r.action, r.outcome, r.actor) for r in records] == [
        ("admission.refused", "refused", "admission")]
    assert records[0].subject == f"{repo}@{moved}"
    other = admission.check(platform, built.image.pinned, commit="0" * 40, source="/elsewhere")
    failed = [c for c in other.checks if not c.ok]
    assert [c.name for c in failed] == ["source"]
    assert "not the release's 000000000000" in failed[0].detail
    assert "/elsewhere" in failed[0].detail


# -- scan and gate -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted_report(platform: Settings, planted: tuple[str, Path]) -> scan.ScanReport:
    return scan.scan(platform, image=planted[0], repo=planted[1])


def test_trivy_finds_planted_secret_and_root_user(planted_report: scan.ScanReport) -> None:
    report = planted_report
    assert report.db_status is DbStatus.UNAVAILABLE
    assert ScanKind.VULN not in report.scanners_run
    assert not report.errors
    secrets = [f for f in report.findings if f.scanner is ScanKind.SECRET]
    assert any(f.location.startswith("/app/config.env") for f in secrets), secrets
    assert any(f.location.startswith("config.env") for f in secrets), "repo scan missed it"
    root = [f for f in report.findings
            if f.scanner is ScanKind.MISCONFIG and f.id.endswith("DS-0002")]
    assert len(root) >= 2, "root user not found in image config and Dockerfile"


def test_gate_blocks_planted_image_naming_the_file(planted_report: scan.ScanReport) -> None:
    decision = scan.gate(planted_report)
    assert not decision.allowed
    with pytest.raises(GateBlocked) as err:
        scan_policy.enforce(decision)
    text = "\n".join(err.value.reasons)
    assert "/app/config.env" in text
    assert "DS-0002" in text and "should not be 'root'" in text
    assert decision.warnings and "VULNERABILITY DB UNAVAILABLE" in decision.warnings[0]


def test_only_signed_waivers_let_the_planted_image_pass(
    platform: Settings, platform_env: dict[str, str], planted_report: scan.ScanReport,
    tmp_path: Path,
) -> None:
    """Unsigned waivers block and say how to sign them; a releaser cannot sign one; `suite
    waiver sign` by a logged-in approver makes them count for the worker's check, naming the
    approver; a waiver edited after signing, one signed by the build identity's key, and an
    expired one all block."""
    import secrets

    import hvac

    from policies.waivers import canonical
    from suite import people
    from suite.errors import VaultError
    from tasks import waivers

    today = date.today()
    blocking = [f for f in planted_report.findings if f.scanner is ScanKind.SECRET
                or (f.scanner is ScanKind.MISCONFIG and f.severity.rank > Severity.MEDIUM.rank)]
    ids = sorted({f.id for f in blocking})
    assert {"aws-access-key-id", "DS-0002"} <= set(ids) or any("DS-0002" in i for i in ids)
    path = tmp_path / "scan.yaml"
    until = today + timedelta(days=1)
    listed = "".join(f"  - {{id: {i}, reason: test fixture, expires: {until}}}\n" for i in ids)
    path.write_text(scan_policy.DEFAULT_POLICY.read_text().replace("waivers: []",
                                                                   "waivers:\n" + listed))
    worker = waivers.verifier(vault.worker_client(platform))

    unsigned = scan.gate(planted_report, path, verify=worker)
    assert not unsigned.allowed
    assert all("is not signed" in r and f"suite waiver sign {path}" in r
               for r in unsigned.reasons), unsigned.reasons

    password = secrets.token_urlsafe(16)
    admin = vault.client(platform)
    people.add_user(admin, "waiver-releaser", password, people.Role.RELEASER)
    people.add_user(admin, "waiver-approver", password, people.Role.APPROVER)
    releaser = people.login(platform, "waiver-releaser", password)
    with pytest.raises(VaultError, match="only the approver role may sign waivers"):
        waivers.sign(scan_policy.load(path).waivers[0],
                     hvac.Client(url=platform.vault_addr, token=releaser.token), datetime.now(UTC))
    token_file = tmp_path / "token"
    token_file.write_text(people.login(platform, "waiver-approver", password).to_json())
    token_file.chmod(0o600)
    env = {**platform_env, "SUITE_TOKEN_FILE": str(token_file)}
    signed = subprocess.run([sys.executable, "-m", "suite.cli", "waiver", "sign", str(path),
                             "--yes"], env=env, capture_output=True, text=True)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    listed_ok = subprocess.run([sys.executable, "-m", "suite.cli", "waiver", "list", str(path)],
                               env=env, capture_output=True, text=True)
    assert listed_ok.returncode == 0, listed_ok.stdout + listed_ok.stderr
    ok = scan.gate(planted_report, path, verify=worker)
    assert ok.allowed, ok.reasons
    assert len(ok.waivers_used) == len(ids)
    assert ok.waiver_signers == ("userpass:waiver-approver",)
    assert scan.summary(planted_report, ok)["waiver_signers"] == ["userpass:waiver-approver"]

    good = path.read_text()
    path.write_text(good.replace("reason: test fixture", "reason: test fixture, widened", 1))
    tampered = scan.gate(planted_report, path, verify=worker)
    assert not tampered.allowed
    assert any("does not match its signature" in r for r in tampered.reasons)

    path.write_text(good)
    first = scan_policy.load(path).waivers[0]
    builder = vault.signer_client(platform, vault.Purpose.PROVENANCE)
    forged = builder.secrets.transit.sign_data(
        name="suite-provenance", hash_input=base64.b64encode(canonical(first)).decode())
    path.write_text(good.replace(first.signature, "transit:suite-provenance:"
                                 + forged["data"]["signature"], 1))
    wrong_key = scan.gate(planted_report, path, verify=worker)
    assert not wrong_key.allowed
    assert any(f"waiver {first.id} is signed with key 'suite-provenance'" in r
               for r in wrong_key.reasons)

    path.write_text(good)
    later = scan.gate(planted_report, path, datetime.now(UTC) + timedelta(days=2),
                      verify=worker)
    assert not later.allowed
    assert all("expired" in r for r in later.reasons)


def test_model_server_image_passes_the_gate(
    platform: Settings, built: build.BuildResult
) -> None:
    report = scan.scan(platform, image=built.image.pinned)
    decision = scan.gate(report)
    assert decision.allowed, decision.reasons
    assert report.findings, "licenses at least are expected"


# -- stages as Prefect tasks: artifacts and audit events ---------------------------------------
def test_stage_tasks_publish_artifacts_and_audit_events(
    platform: Settings, built: build.BuildResult, tmp_path: Path
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client

    from suite import audit, prefect_http
    from tasks.test_stage import test_task

    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nUSER 1000\nHEALTHCHECK NONE\n")

    @flow(name="stages-under-test")
    def stages() -> tuple[build.ImageRef, bool, int]:
        image = build.build_task(settings=platform)
        decision = scan.scan_task(repo=str(tmp_path), settings=platform)
        tests = test_task([str(tmp_path)], str(tmp_path), "tmp-suite", settings=platform)
        return image, decision.allowed, tests.passed

    with prefect_http.client_settings(platform.prefect_api_url):
        image, allowed, passed = stages()

        async def keys() -> set[str]:
            async with get_client() as client:
                return {a.key for a in await client.read_artifacts() if a.key}

        import asyncio

        found = asyncio.run(keys())
    assert image.repository == built.image.repository  # HEAD may have moved meanwhile
    assert allowed and passed == 1
    assert {"build-report", "scan-report", "test-report"} <= found
    actions = [r.action for r in audit.trail(platform).since(None)]
    assert {"stage.build", "stage.scan", "stage.test"} <= set(actions)
