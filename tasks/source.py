"""The source tree a release builds from: the project checkout itself, or a clone of the pushed
repository at the pushed commit (a `git push` to a bare repository builds exactly that commit)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from suite.errors import ConfigError
from suite.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def resolve_ref(repository: str, ref: str) -> str:
    """The commit a branch (or tag, or abbreviated sha) of ``repository`` names now."""
    listed = _git("ls-remote", repository, ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
    for line in listed.splitlines():
        sha = line.split()[0]
        if re.fullmatch(r"[0-9a-f]{40}", sha):
            return sha
    if re.fullmatch(r"[0-9a-f]{7,39}", ref):
        with tempfile.TemporaryDirectory(prefix="suite-ref-") as tmp:
            _git("clone", "--quiet", "--bare", repository, tmp)
            return _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=Path(tmp))
    raise ConfigError(f"{ref!r} is no branch, tag or commit of {repository}")


def checkout(settings: Settings, repository: str, git_sha: str) -> tuple[Path, str]:
    """(source directory, full sha). ``repository`` empty = this project at its HEAD."""
    if not repository:
        head = _git("rev-parse", "HEAD", cwd=PROJECT)
        if git_sha and not head.startswith(git_sha):
            raise ConfigError(
                f"git_sha {git_sha!r} is not the checked-out HEAD {head[:12]} of {PROJECT}; pass "
                f"repository=<git URL or path> to build another commit"
            )
        return PROJECT, head
    if not git_sha:
        raise ConfigError("repository is set but git_sha is empty (which commit to build?)")
    if not re.fullmatch(r"[0-9a-f]{40}", git_sha):
        git_sha = resolve_ref(repository, git_sha)
    dest = settings.dir("releases", "src", git_sha[:40])
    if not (dest / ".git").exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "--quiet", "--no-checkout", repository, str(tmp))
        _git("checkout", "--quiet", "--detach", git_sha, cwd=tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest, _git("rev-parse", "HEAD", cwd=dest)


@task(name="checkout", cache_policy=NO_CACHE)
def checkout_task(settings: Settings, repository: str, git_sha: str) -> tuple[str, str]:
    path, sha = checkout(settings, repository, git_sha)
    return str(path), sha
