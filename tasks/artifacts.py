"""What a build produces, shared by the build stage and the evidence it writes (SBOM, signed
provenance): the image reference, the build's facts, and two small helpers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tasks.images import base as base_image


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class BuildResult:
    image: ImageRef
    image_id: str
    git_sha: str
    git_dirty: bool
    base: base_image.BaseImage
    lockfile: str
    lockfile_digest: str
    engine_version: dict[str, str]
    started_on: str
    finished_on: str
    seconds: float
    invocation_id: str
    repo_root: str


def suite_version() -> str:
    try:
        return metadata.version("ultimate-suite")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
