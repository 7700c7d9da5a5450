"""`suite compliance report`: releases rebuilt from audit records, mapped to the controls."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from policies import compliance as cmap
from suite.audit.record import AuditRecord
from tasks import compliance

TRAIL = [  # (actor, action, subject, outcome, time): two services released at once
    ("release-flow", "release.start", "aaaaaaaa-000001", "ok", "2026-12-01T10:00:00"),
    ("release-flow", "release.start", "bbbbbbbb-000002", "ok", "2026-12-01T10:00:05"),
    ("root", "stage.build", "127.0.0.1:5000/suite/hello@sha256:11", "ok", "2026-12-01T10:01:00"),
    ("root", "stage.build", "127.0.0.1:5000/suite/model-server@sha256:22", "ok",
     "2026-12-01T10:01:10"),
    ("root", "stage.scan", "127.0.0.1:5000/suite/hello@sha256:11", "ok", "2026-12-01T10:02:00"),
    ("root", "stage.scan", "127.0.0.1:5000/suite/model-server@sha256:22", "blocked",
     "2026-12-01T10:02:10"),
    ("release-flow", "release.failed", "bbbbbbbb-000002", "failed", "2026-12-01T10:02:20"),
    ("root", "stage.test", "hello@aaaaaaaa1234", "ok", "2026-12-01T10:03:00"),
    ("release-flow", "canary.analysis", "aaaaaaaa-000001 step 3", "MARGINAL",
     "2026-12-01T10:04:00"),
    ("alice", "canary.approval", "aaaaaaaa-000001 step 3", "approve", "2026-12-01T10:05:00"),
    ("release-flow", "release.promoted", "aaaaaaaa-000001", "promoted", "2026-12-01T10:06:00"),
    ("root", "secret.write", "secret/suite/services/hello/db#pw", "ok", "2026-12-01T10:07:00"),
    ("release-flow", "release.start", "cccccccc-000003", "ok", "2026-12-02T09:00:00"),
]


def records() -> list[AuditRecord]:
    return [AuditRecord(seq=i, time=t + "+00:00", actor=a, action=act, subject=s,
                        inputs_digest="d", outcome=o, prev_hash="p", hash=f"h{i}")
            for i, (a, act, s, o, t) in enumerate(TRAIL, start=1)]


def test_releases_are_rebuilt_with_their_gates() -> None:
    found = {ev.release: ev for ev in compliance.releases(records())}
    hello = found["aaaaaaaa-000001"]
    assert (hello.service, hello.outcome, hello.started_by) == ("hello", "promoted",
                                                                "release-flow")
    assert [(g["gate"], g["outcome"]) for g in hello.gates] == [
        ("build", "ok"), ("scan", "ok"), ("test", "ok"), ("analysis step 3", "MARGINAL")]
    assert hello.approvals == [{"action": "canary.approval", "by": "alice",
                                "decision": "approve", "time": "2026-12-01T10:05:00+00:00"}]
    assert found["cccccccc-000003"].outcome == "unfinished"


def test_release_that_failed_before_its_test_gets_its_service_from_the_image() -> None:
    found = {ev.release: ev for ev in compliance.releases(records())}
    failed = found["bbbbbbbb-000002"]
    assert (failed.service, failed.outcome) == ("model-server", "failed")
    assert [(g["gate"], g["outcome"]) for g in failed.gates] == [("build", "ok"),
                                                                 ("scan", "blocked")]
    assert all("model-server" not in g["subject"] for g in found["aaaaaaaa-000001"].gates)


def test_since_until_select_the_period() -> None:
    report = compliance.build(records(), datetime(2026, 12, 2), None, True, "ok")
    assert [ev.release for ev in report.releases] == ["cccccccc-000003"]
    report = compliance.build(records(), None, datetime(2026, 12, 1, 10, 0, 30), True, "ok")
    assert report.records == 2


def test_every_control_of_the_map_is_reported() -> None:
    report = compliance.build(records(), None, None, True, "audit trail OK")
    controls = {c.control: c for c in report.controls}
    assert {"SOC 2 CC8.1", "ISO 27001 A.8.32", "HIPAA 164.312(b)", "ISO 27001 A.8.15",
            "GDPR Art. 32"} <= set(controls)
    assert "aaaaaaaa-000001" in controls["SOC 2 CC8.1"].releases
    assert controls["HIPAA 164.312(b)"].records == len(TRAIL) and controls[
        "HIPAA 164.312(b)"].chain
    assert "scan.yaml" in controls["SOC 2 CC8.1"].policies  # a file that exists


def test_map_policies_exist_and_patterns_match() -> None:
    for m in cmap.MAP:
        assert cmap.existing_policies(m) == list(m.policies), m.control
    change = cmap.MAP[0]
    assert cmap.matches(change, "pulumi.up") and not cmap.matches(change, "secret.write")


@pytest.mark.parametrize(("ok", "word"), [(True, "VERIFIED"), (False, "FAILED"),
                                          (None, "NOT VERIFIED")])
def test_markdown_and_html_end_with_the_chain(ok: bool | None, word: str) -> None:
    report = compliance.build(records(), None, None, ok, "details")
    md = compliance.markdown(report)
    assert md.rstrip().endswith(f"{word}: details")
    assert "| aaaaaaaa-000001 | hello |" in md and "approval approve by alice" in md
    page = compliance.to_html(report)
    assert page.startswith("<!doctype html>") and f"{word}: details" in page


def test_cli_report_json_and_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from suite import cli
    from suite.cli.commands import compliance as cmd

    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.jsonl").write_text(
        "".join(r.to_json() + "\n" for r in records()))
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    monkeypatch.setattr(cmd, "_verify", lambda s: (True, "audit trail OK: 13 records"))
    assert cli.main(["compliance", "report", "--json", "--since", "2026-12-01"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["releases"]) == 3 and data["chain_ok"] is True
    monkeypatch.setattr(cmd, "_verify", lambda s: (False, "record 4 hash mismatch"))
    assert cli.main(["compliance", "report", "--format", "html", "-o",
                     str(tmp_path / "r.html")]) == 1
    assert "record 4 hash mismatch" in (tmp_path / "r.html").read_text()
    assert cli.main(["compliance", "report", "--since", "yesterday"]) == 2


def test_release_list_newest_first_by_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from suite import cli

    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.jsonl").write_text(
        "".join(r.to_json() + "\n" for r in records()))
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    assert cli.main(["release", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["release"] for r in rows] == ["cccccccc-000003", "bbbbbbbb-000002",
                                            "aaaaaaaa-000001"]
    assert cli.main(["release", "list", "--service", "hello"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].split()[:2] == ["aaaaaaaa-000001", "hello"]
    assert "promoted" in out[1] and "analysis step 3 MARGINAL" in out[1]


def test_release_start_names_its_service_and_who_started_it() -> None:
    """The flow writes `<release> <service> started by <triggered_by>`: the report shows the
    person or push that asked for the release, not only the flow identity that signed it."""
    subject = compliance.start_subject("dddddddd-000004", "quotes",
                                       "github push by ada to\nmain | x")
    assert subject == "dddddddd-000004 quotes started by github push by ada to main | x"
    assert compliance.parse_start(subject) == ("dddddddd-000004", "quotes",
                                               "github push by ada to main | x")
    assert compliance.parse_start("aaaaaaaa-000001") == ("aaaaaaaa-000001", "", "")
    recs = [*records(), AuditRecord(
        seq=99, time="2026-12-02T11:00:00+00:00", actor="release-flow", action="release.start",
        subject=subject, inputs_digest="d", outcome="ok", prev_hash="p", hash="h99")]
    found = {ev.release: ev for ev in compliance.releases(recs)}
    quotes = found["dddddddd-000004"]
    assert (quotes.service, quotes.started_by, quotes.recorded_by) == (
        "quotes", "github push by ada to main | x", "release-flow")
    assert found["aaaaaaaa-000001"].started_by == "release-flow"  # an older record: its actor
    md = compliance.markdown(compliance.build(recs, None, None, True, "ok"))
    assert "| dddddddd-000004 | quotes | 2026-12-02T11:00:00 | github push by ada to main / x |" \
        in md
    assert len(compliance.start_subject("r", "s", "x" * 1000)) == len("r s started by ") + 200
