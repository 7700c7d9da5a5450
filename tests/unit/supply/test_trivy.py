"""Trivy plugin: command lines, JSON parsing, and failures that become report errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.platform import credentials
from suite.settings import Settings
from tasks import scanners
from tasks.scanners.base import DbStatus, ScanKind, ScanTarget, Severity, TargetKind
from tasks.scanners.trivy import TrivyConfig, TrivyScanner, parse_results

IMAGE = ScanTarget(TargetKind.IMAGE, "127.0.0.1:5000/suite/app:1")
SAMPLE = {
    "ArtifactName": "127.0.0.1:5000/suite/app:1",
    "Trivy": {"Version": "0.76.0"},
    "Results": [
        {"Target": "/app/config.env", "Class": "secret",
         "Secrets": [{"RuleID": "aws-access-key-id", "Severity": "CRITICAL",
                      "Title": "AWS Access Key ID", "StartLine": 2}]},
        {"Target": "Dockerfile", "Class": "config",
         "Misconfigurations": [
             {"ID": "DS002", "AVDID": "AVD-DS-0002", "Severity": "HIGH", "Status": "FAIL",
              "Title": "Image user should not be 'root'", "CauseMetadata": {"StartLine": 4}},
             {"ID": "DS001", "AVDID": "AVD-DS-0001", "Severity": "MEDIUM", "Status": "PASS",
              "Title": "passed check"}]},
        {"Target": "Python", "Class": "license-file",
         "Licenses": [{"Severity": "LOW", "Category": "notice", "PkgName": "anyio",
                       "FilePath": "opt/venv/anyio/METADATA", "Name": "MIT"}]},
        {"Target": "app (debian 12)", "Class": "os-pkgs",
         "Vulnerabilities": [{"VulnerabilityID": "CVE-2026-1", "PkgName": "openssl",
                              "InstalledVersion": "3.0", "Severity": "weird",
                              "Title": "bad"}]},
    ],
}


def config(tmp_path: Path, binary: str = "trivy") -> TrivyConfig:
    return TrivyConfig(binary=binary, cache_dir=tmp_path / "cache",
                       docker_host="unix:///run/podman.sock",
                       insecure_registries=("127.0.0.1:5000",))


def test_parse_results_makes_typed_findings_and_drops_passed_checks() -> None:
    found = list(parse_results(SAMPLE, IMAGE))
    assert [(f.scanner, f.id, f.severity, f.location) for f in found] == [
        (ScanKind.SECRET, "aws-access-key-id", Severity.CRITICAL, "/app/config.env:2"),
        (ScanKind.MISCONFIG, "AVD-DS-0002", Severity.HIGH, "Dockerfile:4"),
        (ScanKind.LICENSE, "MIT", Severity.LOW, "opt/venv/anyio/METADATA"),
        (ScanKind.VULN, "CVE-2026-1", Severity.UNKNOWN, "app (debian 12) openssl@3.0"),
    ]


def test_without_db_no_vuln_scanner_and_status_unavailable(tmp_path: Path) -> None:
    scanner = TrivyScanner(config(tmp_path))
    argv = scanner.argv(IMAGE, tmp_path / "o.json")
    assert argv[argv.index("--scanners") + 1] == "secret,misconfig,license"
    assert "--skip-db-update" not in argv
    assert ["--image-src", "remote", "--insecure"] == argv[-4:-1]
    assert ["--image-config-scanners", "misconfig"] == argv[-6:-4]


def test_with_db_in_cache_dir_vulns_are_scanned_offline(tmp_path: Path) -> None:
    db = tmp_path / "cache" / "db"
    db.mkdir(parents=True)
    (db / "trivy.db").write_bytes(b"x")
    (db / "metadata.json").write_text("{}")
    scanner = TrivyScanner(config(tmp_path))
    argv = scanner.argv(ScanTarget(TargetKind.REPO, "/src"), tmp_path / "o.json")
    assert argv[argv.index("--scanners") + 1] == "vuln,secret,misconfig,license"
    assert "--skip-db-update" in argv and argv[1] == "fs" and argv[-1] == "/src"
    assert "--skip-dirs" in argv


def test_local_image_is_read_through_the_engine(tmp_path: Path) -> None:
    argv = TrivyScanner(config(tmp_path)).argv(ScanTarget(TargetKind.IMAGE, "localhost/x:1"),
                                               tmp_path / "o.json")
    assert argv[-5:-1] == ["--image-src", "docker", "--docker-host", "unix:///run/podman.sock"]


def test_failed_trivy_becomes_an_error_never_a_clean_report(tmp_path: Path) -> None:
    report = TrivyScanner(config(tmp_path, binary="/bin/false")).scan(IMAGE)
    assert report.findings == ()
    assert report.db_status is DbStatus.UNAVAILABLE
    assert report.errors and "trivy exited 1" in report.errors[0]


def test_missing_trivy_becomes_an_error(tmp_path: Path) -> None:
    report = TrivyScanner(config(tmp_path, binary=str(tmp_path / "nope"))).scan(IMAGE)
    assert "could not run" in report.errors[0]


def test_scan_of_a_fake_trivy_output(tmp_path: Path) -> None:
    fake = tmp_path / "trivy"
    fake.write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; "
                    f"done\ncat > \"$out\" <<'J'\n{json.dumps(SAMPLE)}\nJ\n")
    fake.chmod(0o755)
    report = TrivyScanner(config(tmp_path, binary=str(fake))).scan(IMAGE)
    assert not report.errors
    assert report.tool_version == "0.76.0"
    assert len(report.findings) == 4
    assert report.targets == (IMAGE,)


def test_unknown_scanner_name_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown scanner 'grype' \(known: trivy\)"):
        scanners.get("grype", Settings(home=tmp_path))


def test_registry_builds_trivy_with_home_cache(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    credentials.prepare(settings)  # as `suite up` does first: trivy pulls as puller
    scanner = scanners.get("trivy", settings)
    assert isinstance(scanner, TrivyScanner)
    assert scanner.config.cache_dir == tmp_path / "trivy"
    assert scanner.config.insecure_registries == ("127.0.0.1:5000",)


def test_two_trivy_runs_on_one_cache_take_turns(tmp_path: Path) -> None:
    """Two releases scanning at once must not meet on trivy's cache lock (trivy gives up on a
    held one after seconds): run_locked lets one finish before the other starts."""
    import sys
    import threading

    from tasks.scanners.trivy import run_locked

    trace = tmp_path / "trace"
    child = [sys.executable, "-c",
             "import sys, time\n"
             "open(sys.argv[1], 'a').write('s')\n"
             "time.sleep(0.3)  # a run that holds the cache for a while\n"
             "open(sys.argv[1], 'a').write('e')", str(trace)]
    runs = [threading.Thread(target=run_locked, args=(tmp_path / "cache", child, 60))
            for _ in range(3)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(120)
    assert trace.read_text() == "se" * 3
