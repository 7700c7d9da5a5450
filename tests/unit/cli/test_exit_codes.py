"""The CLI's documented exit codes, --version, completion and --json on read commands."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from suite import cli
from suite.errors import (
    AuditError,
    ConfigError,
    DeployError,
    GateBlocked,
    MissingBinary,
    PortInUse,
    ProviderError,
    ServiceUnavailable,
    SuiteError,
    VaultError,
)
from suite.services.spec import ManifestError
from tasks.rollout import RolledBack


@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError("bad key"), 2),
    (ManifestError("suite.yaml", ["port: 'eighty' is not an integer"]), 2),
    (ServiceUnavailable("prefect down"), 3),
    (PortInUse("4200 taken"), 3),
    (MissingBinary("haproxy: apt install haproxy"), 3),
    (GateBlocked("scan", ["HIGH finding"]), 1),
    (DeployError("canary died"), 1),
    (ProviderError("prometheus"), 1),
    (AuditError("chain broken"), 1),
    (VaultError("permission denied"), 1),
    (SuiteError("verification failed"), 1),
])
def test_exit_code_of_each_error(exc: BaseException, code: int) -> None:
    assert cli.exit_code(exc) == code


def test_exit_code_of_rolled_back_release_is_failed_outcome() -> None:
    assert cli.exit_code(RolledBack.__new__(RolledBack)) == 1


def _run_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException | None, ret: int = 0) -> int:
    from suite.cli.commands import platform

    def fake(args: argparse.Namespace) -> int:
        if exc is not None:
            raise exc
        return ret

    monkeypatch.setattr(platform, "cmd_env", fake)
    return cli.main(["env"])


def test_main_maps_raised_errors(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_with(monkeypatch, ServiceUnavailable("Prefect at :4200 does not answer")) == 3
    assert "error: Prefect at :4200 does not answer" in capsys.readouterr().err
    assert _run_with(monkeypatch, GateBlocked("scan", ["x"])) == 1
    assert _run_with(monkeypatch, ConfigError("--since 'x' is not a date")) == 2
    assert _run_with(monkeypatch, None, ret=1) == 1
    assert _run_with(monkeypatch, None) == 0


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"suite {cli.version()}"


def test_completion_script_completes_subcommands(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = tmp_path / "suite.bash"
    script.write_text(capsys.readouterr().out)
    probe = (f'source {script}; COMP_WORDS=(suite audit v); COMP_CWORD=2; _suite; '
             'echo "${COMPREPLY[@]}"; COMP_WORDS=(suite services show x --j); COMP_CWORD=4; '
             '_suite; echo "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["verify", "--json"]


def test_completion_tree_lists_options_and_choices() -> None:
    from suite.cli.commands.completion import tree

    paths = tree(cli.parser())
    assert {"up", "release", "services", "completion", "--version"} <= set(paths[""])
    assert "--json" in paths["services list"]
    assert "postgres" in paths["up"]  # an option's choices


READ_COMMANDS = [
    ["status"], ["env"], ["audit", "show"], ["audit", "verify"], ["model", "history", "m"],
    ["services", "validate"], ["services", "list"], ["services", "show", "x"],
    ["release", "status", "x"], ["verify", "img"], ["images", "scan", "img"], ["doctor"],
    ["compliance", "report"], ["release", "list"], ["load"],
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_every_read_command_has_json(argv: list[str]) -> None:
    args = cli.parser().parse_args([*argv, "--json"])
    assert args.json is True


def test_env_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    assert cli.main(["env", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["SUITE_HOME"] == str(tmp_path)
    assert data["PREFECT_API_URL"].startswith("http://127.0.0.1:")


def test_load_json_and_exit_code(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from suite import load
    from suite.load import LoadReport

    def fake_run(url: str, rate: float, duration: float, rows: object, **kw: object) -> LoadReport:
        return LoadReport(sent=10, ok=8, failed=2, by_status={"200": 8, "503": 2},
                          duration_s=1.0, p50_ms=1.0, p99_ms=3.0)

    monkeypatch.setattr(load, "run", fake_run)
    assert cli.main(["load", "--url", "http://127.0.0.1:9/", "--json"]) == 1  # 2 > max-failed 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["failed"] == 2 and data["achieved_rate"] == 10.0
    assert "sending" in captured.err
