"""The registry of services: registered from a git repository's branch head, names and hosts
unique, and plans that validate every template before anything is built."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.services.registry import Registry
from suite.services.spec import ManifestError
from suite.settings import Settings
from tasks import plan as plan_mod
from tasks.control import Active, Command, Releases
from tasks.test_stage import counts_from_output

MANIFEST = """service: {name}
port: 8080
readiness: /healthz
route: {{host: {host}}}
test: {{command: ["true"]}}
strategy:
  canary:
    steps:
      - setWeight: 20
      - analysis: {{templates: [{{templateName: {template}}}]}}
"""


def repo(path: Path, name: str = "web", host: str = "web.localhost",
         template: str = "http", extra: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "suite.yaml").write_text(MANIFEST.format(name=name, host=host, template=template))
    (path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    for rel, text in (extra or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=path, check=True)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", ports={})


def test_register_reads_the_branch_head(settings: Settings, tmp_path: Path) -> None:
    reg, spec = Registry(settings).register(str(repo(tmp_path / "web")), "main")
    assert reg.service == spec.service == "web" and len(reg.head) == 40
    assert reg.manifest_digest == spec.digest
    assert Registry(settings).get("web") == reg
    assert Registry(settings).by_repository(str(tmp_path / "web" / "")) == [reg]


def test_unknown_branch_and_missing_manifest_are_named(settings: Settings,
                                                       tmp_path: Path) -> None:
    path = repo(tmp_path / "web")
    with pytest.raises(ConfigError, match="cannot fetch 'dev'"):
        Registry(settings).register(str(path), "dev")
    (path / "suite.yaml").unlink()
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "rm"],
                   cwd=path, check=True)
    with pytest.raises(ManifestError, match=r"suite\.yaml not found"):
        Registry(settings).register(str(path), "main")


def test_names_and_hosts_are_unique(settings: Settings, tmp_path: Path) -> None:
    Registry(settings).register(str(repo(tmp_path / "a")), "main")
    with pytest.raises(ConfigError, match="already registered from"):
        Registry(settings).register(str(repo(tmp_path / "b")), "main")
    with pytest.raises(ConfigError, match=r"route\.host .web\.localhost. .* already the route"):
        Registry(settings).register(str(repo(tmp_path / "c", name="other")), "main")


def test_an_unregistered_service_names_the_registered_ones(settings: Settings,
                                                           tmp_path: Path) -> None:
    Registry(settings).register(str(repo(tmp_path / "a")), "main")
    with pytest.raises(ConfigError, match=r"'nope' is not registered \(registered: web\)"):
        Registry(settings).get("nope")


def test_repository_templates_come_before_built_in_ones(tmp_path: Path) -> None:
    builtin = (plan_mod.BUILT_IN / "http.yaml").read_text()
    own = builtin.replace("window_seconds: 30", "window_seconds: 31")
    path = repo(tmp_path / "web", template="http", extra={".suite/analysis/http.yaml": own})
    assert plan_mod.template_path("http", path) == path / ".suite" / "analysis" / "http.yaml"
    assert plan_mod.template_path("model-server", path).parent == plan_mod.BUILT_IN


def test_a_template_typo_fails_the_plan_before_any_build(tmp_path: Path) -> None:
    from suite.services import spec as spec_mod

    path = repo(tmp_path / "web", template="htp")
    with pytest.raises(ConfigError, match=r"analysis template 'htp' not found \(built in: "
                                          r"http, model-server"):
        plan_mod.resolve_templates(spec_mod.load(path), path)
    broken = repo(tmp_path / "web2", template="mine",
                  extra={".suite/analysis/mine.yaml": "selectors: {}\nmetrics: []\n"})
    with pytest.raises(ConfigError, match=r"mine\.yaml"):
        plan_mod.resolve_templates(spec_mod.load(broken), broken)


def test_promote_and_abort_reach_only_the_release_in_progress(settings: Settings) -> None:
    releases = Releases(settings)
    with pytest.raises(ConfigError, match="no release in progress"):
        releases.send("web", Command.ABORT, "ada", "why")
    releases.start(Active("web", "r1", "run-1", "canary", "now"))
    releases.send("web", Command.ABORT, "ada", "too slow")
    assert releases.pending("web", "r2") is None  # another release never takes it
    peek = releases.pending("web", "r1", consume=False)
    assert peek is not None and peek.actor == "ada"
    taken = releases.pending("web", "r1")
    assert taken is not None and taken.command == Command.ABORT
    assert releases.pending("web", "r1") is None
    releases.update("web", phase="ended", outcome="rolled_back")
    with pytest.raises(ConfigError, match="ended rolled_back"):
        releases.send("web", Command.PROMOTE, "ada", "")


@pytest.mark.parametrize(("text", "code", "expected"), [
    ("===== 3 passed, 1 failed, 2 skipped in 0.5s =====", 1, (3, 1, 0, 2)),
    ("Ran 5 tests in 0.01s\n\nOK", 0, (5, 0, 0, 0)),
    ("Ran 5 tests in 0.01s\n\nFAILED (failures=1, errors=1)", 1, (3, 1, 1, 0)),
    ("whatever it prints", 0, (1, 0, 0, 0)),
    ("whatever it prints", 3, (0, 1, 0, 0)),
])
def test_test_counts_from_the_runner_summary(text: str, code: int,
                                             expected: tuple[int, int, int, int]) -> None:
    assert counts_from_output(text, code) == expected
