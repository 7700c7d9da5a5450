"""The suite's Python base image, made here because no public registry is reachable.

A Debian bookworm ``minbase`` rootfs with python3 (debootstrap from the machine's own Debian
mirror) is imported into the engine as ``localhost/suite-base:bookworm`` and pushed to the
platform's registry, whose manifest digest is what build provenance records. The rootfs tar
(~60 s to make) is cached in ``settings.image_cache`` and shared by every home and test run;
the engine import and push are cached per platform. ``rebuild=True`` makes everything anew.

The image trusts the CA bundle of the machine that built it (``/etc/ssl/certs`` of the host,
as images behind a corporate TLS proxy do): ``RUN pip install …`` in any service's Dockerfile
then verifies the package index through this machine's egress, and ``SSL_CERT_FILE``,
``PIP_CERT`` and ``REQUESTS_CA_BUNDLE`` point every common client at it. The bundle holds
public certificates only; its digest is recorded, and a changed bundle makes the image anew.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker

from suite import engine as engine_mod
from suite.errors import ConfigError, MissingBinary, ProviderError
from suite.platform.files import atomic_write
from suite.settings import Settings

SUITE = "bookworm"
LOCAL_REPO = "localhost/suite-base"
LOCAL_REF = f"{LOCAL_REPO}:{SUITE}"
RAW_REPO = "localhost/suite-base-rootfs"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
TRUST_DOCKERFILE = f"""ARG ROOTFS
FROM ${{ROOTFS}}
COPY host-ca.crt {CA_PATH}
ENV SSL_CERT_FILE={CA_PATH} PIP_CERT={CA_PATH} REQUESTS_CA_BUNDLE={CA_PATH}
"""
REGISTRY_PATH = "suite/base"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_SOURCES = Path("/etc/apt/sources.list")

Report = Callable[[str], None]


@dataclass(frozen=True)
class BaseImage:
    local_ref: str
    registry_ref: str
    digest: str
    image_id: str
    created: str
    trusts: str = ""  # sha256 of the host CA bundle baked in

    @property
    def pinned(self) -> str:
        repo, _ = engine_mod.split_ref(self.registry_ref)
        return f"{repo}@{self.digest}"


def rootfs_tar(settings: Settings) -> Path:
    return settings.image_cache / f"rootfs-{SUITE}.tar"


def record_path(settings: Settings) -> Path:
    return settings.dir("images", "base.json")


def debian_mirror(sources: Path = SOURCES, fallback: Path = FALLBACK_SOURCES) -> str:
    """The machine's main Debian mirror (deb822 ``URIs:`` or a one-line ``deb`` entry)."""
    for path in (sources, fallback):
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if line.startswith("URIs:") and len(parts) > 1 and "security" not in parts[1]:
                return parts[1]
            if parts[:1] == ["deb"] and "security" not in line:
                urls = [p for p in parts[1:] if "://" in p]
                if urls:
                    return urls[0]
    raise ConfigError(
        f"no Debian mirror found in {sources} or {fallback} (expected a 'URIs:' line); "
        f"configure apt first"
    )


def make_rootfs(settings: Settings, report: Report) -> Path:
    """debootstrap a minbase rootfs and pack it as a tar in the image cache (~60 s)."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise MissingBinary("'debootstrap' is not installed: apt-get install debootstrap")
    target = rootfs_tar(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    report(f"debootstrap {SUITE} minbase from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(root), mirror],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise ProviderError(f"debootstrap {SUITE} from {mirror} failed:\n{tail}")
        for junk in ("var/cache/apt", "var/lib/apt/lists"):
            for child in (root / junk).glob("*"):
                if child.is_file():
                    child.unlink()
        partial = target.with_suffix(".tar.partial")
        subprocess.run(
            ["tar", "--numeric-owner", "--sort=name", "-C", str(root), "-cf", str(partial), "."],
            check=True,
        )
        partial.replace(target)
    return target


def load_record(settings: Settings) -> BaseImage | None:
    try:
        return BaseImage(**json.loads(record_path(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _ca_digest(ca: Path = HOST_CA) -> str:
    import hashlib

    try:
        return "sha256:" + hashlib.sha256(ca.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"the host CA bundle {ca} cannot be read ({exc.strerror}): "
                          f"apt-get install ca-certificates") from exc


def _still_valid(settings: Settings, engine: docker.DockerClient, rec: BaseImage) -> bool:
    if rec.trusts != _ca_digest() or not engine_mod.image_exists(engine, rec.local_ref):
        return False
    repo, tag = engine_mod.split_ref(rec.registry_ref)
    try:
        return engine_mod.registry_digest(
            repo, tag, auth=engine_mod.registry_login(settings, repo, "puller")) == rec.digest
    except ProviderError:
        return False


def ensure_base(
    settings: Settings,
    engine: docker.DockerClient,
    *,
    rebuild: bool = False,
    report: Report = lambda _: None,
) -> BaseImage:
    """The base image, in the engine and in the registry; made only when missing or asked."""
    rec = load_record(settings)
    if rec and not rebuild and _still_valid(settings, engine, rec):
        report(f"base image cached: {rec.local_ref} = {rec.pinned}")
        return rec
    tar = rootfs_tar(settings)
    if rebuild or not tar.exists():
        make_rootfs(settings, report)
    report(f"importing {tar} as {RAW_REPO}:{SUITE}")
    try:
        with open(tar, "rb") as fh:
            raw = engine.api.import_image_from_data(fh, repository=RAW_REPO, tag=SUITE)
    except docker.errors.APIError as exc:
        raise ProviderError(f"importing {tar} into the engine failed: {exc}") from exc
    engine.images.get(_imported_id(raw)).tag(RAW_REPO, SUITE)  # podman ignores the tag given
    report(f"adding the host's CA bundle: {LOCAL_REF}")
    trusts = _ca_digest()
    with tempfile.TemporaryDirectory(prefix="suite-base-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(TRUST_DOCKERFILE)
        shutil.copyfile(HOST_CA, Path(tmp) / "host-ca.crt")
        built = engine_mod.build(engine, context=Path(tmp), dockerfile="Dockerfile",
                                 tag=LOCAL_REF, buildargs={"ROOTFS": f"{RAW_REPO}:{SUITE}"})
    image_id = built.image_id
    image = engine.images.get(image_id)
    registry_repo = f"{engine_mod.registry_address(settings)}/{REGISTRY_PATH}"
    image.tag(registry_repo, SUITE)
    report(f"pushing {registry_repo}:{SUITE}")
    engine_mod.push(engine, registry_repo, SUITE,
                    auth=engine_mod.docker_auth(settings, registry_repo, "builder"))
    rec = BaseImage(
        local_ref=LOCAL_REF,
        registry_ref=f"{registry_repo}:{SUITE}",
        digest=engine_mod.registry_digest(
            registry_repo, SUITE, auth=engine_mod.registry_login(settings, registry_repo,
                                                                 "puller")),
        image_id=str(image.id),
        created=datetime.now(UTC).isoformat(),
        trusts=trusts,
    )
    atomic_write(record_path(settings), json.dumps(asdict(rec), indent=2))
    return rec


def _imported_id(raw: object) -> str:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    for line in text.splitlines():
        try:
            chunk = json.loads(line)
        except ValueError:
            continue
        if "error" in chunk or "errorDetail" in chunk:
            raise ProviderError(f"image import failed: {chunk.get('error') or chunk}")
        for key in ("id", "status"):
            value = str(chunk.get(key, ""))
            if value.startswith("sha256:"):
                return value
    raise ProviderError(f"image import returned no image id: {text[:200]}")
