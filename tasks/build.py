"""Build stage: build the model-server image FROM the suite base, tag it with the git sha, push it,
and return an :class:`ImageRef` whose digest is the one the push reported (cross-checked
against the registry's answer for the tag, which refuses on a mismatch).

The build context is staged in a temporary directory with only what the image needs (the
Dockerfile, the lockfile, the host's CA bundle for pip, the service's sources) so nothing else
from the work tree, and no ``.venv``, is sent to the engine. Dependencies are installed before
the sources are copied: a code-only change rebuilds only the last layers.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
from prefect import task

from suite import engine as engine_mod
from suite.errors import ConfigError
from suite.services.spec import ServiceSpec
from suite.settings import Settings
from tasks import evidence
from tasks.artifacts import BuildResult, ImageRef, sha256_file, suite_version
from tasks.images import base as base_image

__all__ = ["BuildResult", "BuildSpec", "ImageRef", "build_image", "build_task", "for_service",
           "sha256_file", "suite_version"]

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(__file__).resolve().parent / "images"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SOURCE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".txt", ".toml")
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests"}


@dataclass(frozen=True)
class BuildSpec:
    """What to build. Defaults: the ONNX model server (``python -m models.serve``)."""

    name: str = "model-server"
    dockerfile: Path = IMAGES / "model-server.Dockerfile"
    lockfile: Path = IMAGES / "model-server.lock"
    #: directories (relative to ``repo_root``) copied into the context under the same name
    sources: tuple[str, ...] = ("models",)
    repo_root: Path = REPO_ROOT
    ca_bundle: Path = CA_BUNDLE
    #: extra files for the context: name in context -> file
    extra_files: tuple[tuple[str, Path], ...] = ()
    repository_path: str = field(default="")
    #: the repository root is the context as it is (its .dockerignore honoured), the Dockerfile
    #: a path inside it: how a service's own manifest builds (``for_service``)
    whole_repo: bool = False
    target: str = ""
    buildargs: tuple[tuple[str, str], ...] = ()

    def repository(self, settings: Settings) -> str:
        path = self.repository_path or f"suite/{self.name}"
        return f"{engine_mod.registry_address(settings)}/{path}"


def git_state(repo: Path) -> tuple[str, bool]:
    """(HEAD sha, whether the work tree has uncommitted changes)."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"{repo} is not a git work tree with a commit (needed for the image "
                          f"tag): {exc}") from exc
    return sha, dirty


def _copy_sources(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or SKIP_PARTS.intersection(rel.parts):
            continue
        if path.suffix not in SOURCE_SUFFIXES and path.name != "Dockerfile":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)  # content only: mtimes never bust the layer cache


def _staged(path: Path) -> Path:
    """Where a platform file goes in a staged context: its path in this repository."""
    try:
        return path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return Path(path.name)


def stage_context(spec: BuildSpec, dest: Path) -> Path:
    for what, path in (("Dockerfile", spec.dockerfile), ("lockfile", spec.lockfile),
                       ("CA bundle", spec.ca_bundle)):
        if not path.is_file():
            raise ConfigError(f"{what} {path} for image {spec.name!r} does not exist")
    # laid out as in this repository, so the same Dockerfile builds from the repository root
    for path in (spec.dockerfile, spec.lockfile):
        (dest / _staged(path)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / _staged(path))
    shutil.copyfile(spec.ca_bundle, dest / "build-ca.crt")
    for rel in spec.sources:
        src = spec.repo_root / rel
        if not src.is_dir():
            raise ConfigError(f"source directory {src} for image {spec.name!r} does not exist")
        _copy_sources(src, dest / rel)
    for name, path in spec.extra_files:
        shutil.copyfile(path, dest / name)
    return dest


def for_service(spec: ServiceSpec, repo_root: Path) -> BuildSpec:
    """How a service's manifest builds: context = the repository root, its own Dockerfile."""
    dockerfile = repo_root / spec.build.dockerfile
    if not dockerfile.is_file():
        raise ConfigError(f"build.dockerfile: {spec.build.dockerfile!r} does not exist in "
                          f"{repo_root} (expected a path relative to the repository root)")
    if repo_root.resolve() not in dockerfile.resolve().parents:
        raise ConfigError(f"build.dockerfile: {spec.build.dockerfile!r} leaves the repository")
    return BuildSpec(name=spec.service, dockerfile=dockerfile, lockfile=dockerfile,
                     sources=(), repo_root=repo_root, whole_repo=True, target=spec.build.target,
                     buildargs=spec.build.args)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_image(
    settings: Settings,
    spec: BuildSpec | None = None,
    *,
    engine: docker.DockerClient | None = None,
    tag: str | None = None,
    nocache: bool = False,
) -> BuildResult:
    """Build, tag with the git sha (first 12 hex digits unless ``tag``), push; the digest is
the push's own (:func:`suite.engine.push_pinned`)."""
    spec = spec or BuildSpec()
    engine = engine or engine_mod.client(settings)
    sha, dirty = git_state(spec.repo_root)
    tag = tag or sha[:12]
    base = base_image.ensure_base(settings, engine)
    repository = spec.repository(settings)
    started, began = _now(), time.monotonic()
    buildargs = {**dict(spec.buildargs), "BASE_IMAGE": base.local_ref}
    if spec.whole_repo:
        built = engine_mod.build(
            engine, context=spec.repo_root,
            dockerfile=str(spec.dockerfile.relative_to(spec.repo_root)),
            tag=f"{repository}:{tag}", buildargs=buildargs, nocache=nocache, target=spec.target,
        )
    else:
        with tempfile.TemporaryDirectory(prefix=f"build-{spec.name}-") as tmp:
            context = stage_context(spec, Path(tmp))
            built = engine_mod.build(
                engine, context=context, dockerfile=str(_staged(spec.dockerfile)),
                tag=f"{repository}:{tag}", buildargs=buildargs, nocache=nocache,
            )
    # the digest is the push's own; the registry's answer for the tag only cross-checks it
    digest = engine_mod.push_pinned(
        engine, repository, tag, push_auth=engine_mod.docker_auth(settings, repository, "builder"),
        read_auth=engine_mod.registry_login(settings, repository, "puller"))
    version: dict[str, Any] = engine.version()
    return BuildResult(
        image=ImageRef(repository, tag, digest),
        image_id=built.image_id,
        git_sha=sha,
        git_dirty=dirty,
        base=base,
        lockfile=str(_rel(spec.lockfile, spec.repo_root)),
        lockfile_digest=sha256_file(spec.lockfile),
        engine_version={"engine": str(version.get("Version", "")),
                        "api": str(version.get("ApiVersion", ""))},
        started_on=started,
        finished_on=_now(),
        seconds=round(time.monotonic() - began, 2),
        invocation_id=str(uuid.uuid4()),
        repo_root=str(spec.repo_root),
    )


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path


def markdown(result: BuildResult, sbom_components: int, evidence_dir: Path) -> str:
    img = result.image
    return "\n".join([
        f"# Build: `{img.ref}`", "",
        "| field | value |", "|---|---|",
        f"| digest | `{img.digest}` |",
        f"| git sha | `{result.git_sha}`{' (dirty tree)' if result.git_dirty else ''} |",
        f"| base image | `{result.base.pinned}` |",
        f"| lockfile | `{result.lockfile}` `{result.lockfile_digest}` |",
        f"| engine | {result.engine_version.get('engine', '')} "
        f"(API {result.engine_version.get('api', '')}) |",
        f"| build + push | {result.seconds} s |",
        f"| SBOM | {sbom_components} components (CycloneDX) |",
        f"| evidence | `{evidence_dir}` (SBOM, signed SLSA provenance) |",
    ])


@task(name="build")
def build_task(spec: BuildSpec | None = None, settings: Settings | None = None) -> ImageRef:
    """Build + push + evidence; publish the artifact and append the audit event."""
    from prefect.artifacts import create_markdown_artifact

    from suite import audit, vault
    from suite import settings as settings_mod

    settings = settings or settings_mod.load()
    result = build_image(settings, spec)
    ev = evidence.write_evidence(settings, result, vault.client(settings))
    create_markdown_artifact(key="build-report", markdown=markdown(result, ev.sbom_components,
                                                                    ev.directory),
                             description=f"build of {result.image.ref}")
    audit.append(settings, action="stage.build", subject=result.image.pinned,
                 inputs={"tag": result.image.tag, "git_sha": result.git_sha,
                         "base": result.base.pinned, "lockfile": result.lockfile_digest,
                         "provenance": str(ev.provenance)})
    return result.image
