"""Which service the Kubernetes program renders, and the manifest's values in Kubernetes' words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.k8s_config import load_kubernetes
from stacks.k8s_quantities import cpu_quantity, memory_quantity, secret_name
from suite.errors import ConfigError
from suite.services.registry import Registry
from suite.settings import Settings
from tests.unit.stacks.helpers import HTTPBIN, reader

IMAGE = "registry.example.com/teams/httpbin:2.0.1"
needs_git = pytest.mark.skipif(shutil.which("git") is None,
                               reason="needs git: `apt-get install git`")


@pytest.mark.parametrize(("cpus", "expected"), [(0.5, "500m"), (1.0, "1"), (2.0, "2"),
                                                (0.25, "250m"), (1.5, "1500m"),
                                                (0.0001, "1m")])
def test_cpus_become_cpu_quantities(cpus: float, expected: str) -> None:
    assert cpu_quantity(cpus) == expected


@pytest.mark.parametrize(("size", "expected"), [(256 * 1024**2, "256Mi"), (1024**3, "1Gi"),
                                                (1536 * 1024**2, "1536Mi"),
                                                (512 * 1000**2, "500000Ki"),
                                                (16 * 1024**2 + 1, "16777217")])
def test_memory_becomes_an_exact_binary_quantity(size: int, expected: str) -> None:
    assert memory_quantity(size) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("services/httpbin/db", "httpbin-db"),
    ("services/httpbin/upstream_api", "httpbin-upstream-api"),
    ("services/httpbin/a/b.c", "httpbin-a-b-c"),
    ("services/httpbin", "httpbin"),
])
def test_vault_paths_name_kubernetes_secrets(path: str, expected: str) -> None:
    assert secret_name("httpbin", path) == expected


def test_two_vault_paths_on_one_secret_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(
        "service: web\nport: 8080\nstrategy: {rolling: {}}\n"
        "secrets: {A: 'services/web/db_x#k', B: 'services/web/db-x#k'}\n")
    with pytest.raises(ConfigError, match="both map to the Kubernetes Secret 'web-db-x'"):
        load_kubernetes(reader(manifest=str(tmp_path), stableImage=IMAGE))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def registered(tmp_path: Path) -> tuple[Settings, Path]:
    """httpbin registered from a git repository of its own (as `suite services add` does)."""
    repo = tmp_path / "httpbin"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "suite.yaml").write_text(Path(HTTPBIN).read_text())
    _git(repo, "add", "suite.yaml")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    settings = Settings(home=tmp_path / "home")
    Registry(settings).register(str(repo), "main")
    return settings, repo


@needs_git
def test_a_registered_service_renders_from_its_recorded_commit(
    registered: tuple[Settings, Path],
) -> None:
    settings, repo = registered
    recorded = _git(repo, "rev-parse", "HEAD")
    # a later push to the branch does not change what the stack renders...
    (repo / "suite.yaml").write_text(Path(HTTPBIN).read_text().replace("replicas: 3",
                                                                       "replicas: 5"))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "two")
    cfg = load_kubernetes(reader(service="httpbin", stableImage=IMAGE), settings=settings)
    assert (cfg.app, cfg.min_replicas) == ("httpbin", 3)
    # ...until the deploy target names the commit it releases
    head = _git(repo, "rev-parse", "HEAD")
    assert head != recorded
    cfg = load_kubernetes(reader(service="httpbin", serviceRef=head, stableImage=IMAGE),
                          settings=settings)
    assert cfg.min_replicas == 5


@needs_git
def test_an_unregistered_service_lists_the_registered_ones(
    registered: tuple[Settings, Path],
) -> None:
    settings, _ = registered
    with pytest.raises(ConfigError, match=r"service 'shop' is not registered \(registered: "
                                          r"httpbin\)"):
        load_kubernetes(reader(service="shop", stableImage=IMAGE), settings=settings)


def test_service_and_manifest_agreeing_is_accepted() -> None:
    cfg = load_kubernetes(reader(service="httpbin", manifest=HTTPBIN, stableImage=IMAGE))
    assert cfg.app == "httpbin"
