"""Local git repositories holding a `suite.yaml`, and a registry under a temporary home: what
`suite services add PATH` writes, without a platform. Shared by the webhook's unit and
integration tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from suite.services.registry import Registration, Registry
from suite.settings import Settings


def manifest(service: str) -> str:
    return f"service: {service}\nport: 8080\nreadiness: /healthz\nstrategy:\n  rolling: {{}}\n"


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Ann", "-c",
                           "user.email=ann@example.com", *args],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def commit_manifest(repo: Path, service: str, branch: str = "main") -> str:
    """Commit a manifest naming ``service`` on ``branch`` (created from HEAD if new); its sha."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", branch, str(repo)], check=True)
    elif git(repo, "branch", "--show-current") != branch:
        git(repo, "checkout", "-q", "-B", branch)
    (repo / "suite.yaml").write_text(manifest(service))
    git(repo, "add", "suite.yaml")
    git(repo, "commit", "-q", "--allow-empty", "-m", f"{service} on {branch}")
    return git(repo, "rev-parse", "HEAD")


def register(registry: Registry, repo: Path, service: str, branch: str = "main") -> Registration:
    """``suite services add REPO --branch BRANCH`` for a manifest naming ``service``."""
    commit_manifest(repo, service, branch)
    reg, _ = registry.register(str(repo), branch)
    assert reg.service == service
    return reg


def temp_registry(home: Path) -> Registry:
    return Registry(Settings(home=home))
