"""Registered services: which repository and branch each service releases from.

``suite services add`` reads ``suite.yaml`` at the branch head, validates it and writes one
record per service to ``<home>/services/<name>.json`` (atomic). The release flow, the webhook
and the router read these records; a release re-reads the manifest at the commit it builds.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from suite.errors import ConfigError
from suite.platform.files import atomic_write
from suite.services import spec as spec_mod
from suite.services.spec import ServiceSpec
from suite.settings import Settings

VERSION = 1


@dataclass(frozen=True)
class Registration:
    service: str
    repository: str  # git URL or absolute path of a git repository
    branch: str
    manifest_digest: str  # of suite.yaml at the branch head when added
    head: str  # that commit
    host: str  # route host (from the manifest)
    added: str
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout}")
    return proc.stdout.strip()


def normalise_repository(repository: str) -> str:
    """A local path becomes absolute (the webhook and workers must find it); URLs stay."""
    if "://" in repository or repository.startswith("git@"):
        return repository.rstrip("/")
    path = Path(repository).expanduser()
    if not path.exists():
        raise ConfigError(f"repository {repository!r} is neither a git URL nor an existing path")
    path = path.resolve()
    bare = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-bare-repository"],
                          capture_output=True, text=True, check=False)
    if bare.returncode != 0:
        raise ConfigError(f"{path} is not a git repository (a service is registered from its "
                          f"repository: `git init && git add -A && git commit`, or give its URL)")
    if bare.stdout.strip() == "true":
        return str(path)
    top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True, check=False).stdout.strip()
    if Path(top).resolve() != path:
        raise ConfigError(f"{path} is inside the git repository {top} but not its root: "
                          f"suite.yaml must be at the root of the service's own repository")
    return str(path)


def read_manifest_at(repository: str, ref: str) -> tuple[ServiceSpec, str]:
    """(the manifest at ``ref`` of ``repository``, the full commit sha): a shallow fetch."""
    with tempfile.TemporaryDirectory(prefix="suite-manifest-") as tmp:
        work = Path(tmp)
        _git("init", "--quiet", cwd=work)
        try:
            _git("fetch", "--quiet", "--depth=1", repository, ref, cwd=work)
        except ConfigError as exc:
            raise ConfigError(f"cannot fetch {ref!r} of {repository}: {exc} (is the branch "
                              f"name right? --branch NAME)") from exc
        sha = _git("rev-parse", "FETCH_HEAD", cwd=work)
        try:
            text = _git("show", f"{sha}:{spec_mod.MANIFEST}", cwd=work)
        except ConfigError as exc:
            raise spec_mod.ManifestError(f"{repository}@{ref}", [
                f"{spec_mod.MANIFEST} not found at the root of {ref} ({sha[:12]}): add one "
                f"(see docs/services.md)"]) from exc
    return spec_mod.loads(text + "\n", f"{repository}@{ref}:{spec_mod.MANIFEST}"), sha


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.folder = settings.dir("services")

    def _path(self, name: str) -> Path:
        if not spec_mod.NAME_RE.match(name):
            raise ConfigError(f"service name {name!r} is not valid ([a-z][a-z0-9-]{{0,30}})")
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Registration:
        try:
            data = json.loads(self._path(name).read_text())
        except FileNotFoundError as exc:
            known = ", ".join(r.service for r in self.all()) or "none"
            raise ConfigError(f"service {name!r} is not registered (registered: {known}); "
                              f"`suite services add PATH_OR_GIT_URL`") from exc
        except ValueError as exc:
            raise ConfigError(f"{self._path(name)} is not valid JSON ({exc}); "
                              f"`suite services add` it again") from exc
        return Registration(**data)

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def all(self) -> list[Registration]:
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.exists() else []:
            try:
                found.append(Registration(**json.loads(path.read_text())))
            except (ValueError, TypeError):
                continue
        return found

    def by_repository(self, repository: str) -> list[Registration]:
        """Registered services whose repository is ``repository`` (URL or path, normalised)."""
        wanted = repository_key(repository)
        return [r for r in self.all() if repository_key(r.repository) == wanted]

    def register(self, repository: str, branch: str = "main") -> tuple[Registration, ServiceSpec]:
        repository = normalise_repository(repository)
        spec, sha = read_manifest_at(repository, branch)
        for other in self.all():
            if other.service != spec.service and other.host == spec.host:
                raise ConfigError(f"route.host {spec.host!r} of {spec.service!r} is already "
                                  f"the route of service {other.service!r}; choose another host")
        if self.exists(spec.service):
            current = self.get(spec.service)
            if repository_key(current.repository) != repository_key(repository):
                raise ConfigError(
                    f"service {spec.service!r} is already registered from {current.repository}"
                    f" (names are unique on the platform): `suite services remove "
                    f"{spec.service}` first, or rename the service in {spec_mod.MANIFEST}")
        reg = Registration(service=spec.service, repository=repository, branch=branch,
                           manifest_digest=spec.digest, head=sha, host=spec.host,
                           added=datetime.now(UTC).isoformat(timespec="seconds"))
        atomic_write(self._path(spec.service), reg.to_json())
        return reg, spec

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


#: ``[user@]host:path`` (scp-like ssh), as long as it is not ``C:\\…`` or ``/a:b``
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^@/:]{2,}):(?!//)(?P<path>.+)$")


def repository_key(repository: str) -> str:
    """One key for every way of writing one repository's address: ``host/owner/repo`` for a
    remote (scheme, user, port and ``.git`` dropped: https, ssh, scp-like and git:// forms of one
    repository agree), the resolved absolute path for a local one (``file://`` included)."""
    text = repository.strip().rstrip("/")
    host, path = "", text
    scp = None if "://" in text else _SCP.match(text)
    if scp:
        host, path = scp["host"], scp["path"]
    elif "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() == "file":
            path = unquote(parts.path)
        else:
            host, path = (parts.hostname or ""), unquote(parts.path)
    if not host:
        try:
            path = str(Path(path).expanduser().resolve())
        except (OSError, RuntimeError):
            pass
    path = path.rstrip("/").removesuffix(".git").rstrip("/")
    key = f"{host}/{path.strip('/')}" if host else path
    return key.lower()
