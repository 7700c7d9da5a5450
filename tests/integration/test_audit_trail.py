"""Audit trail against real Vault transit signatures: every kind of tampering is caught."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from suite.audit import AuditTrail
from suite.audit.signer import TransitSigner
from suite.errors import AuditError
from suite.settings import Settings
from suite.vault import Purpose, signer_client

pytestmark = pytest.mark.integration


@pytest.fixture
def trail(platform: Settings, tmp_path: Path) -> AuditTrail:
    t = AuditTrail(tmp_path / "audit", TransitSigner(signer_client(platform, Purpose.AUDIT)))
    for i in range(5):
        t.append(actor="alice", action="stage.build", subject=f"img-{i}", inputs={"i": i})
    return t


def lines(t: AuditTrail) -> list[str]:
    return t.path.read_text().splitlines()


def write(t: AuditTrail, rows: list[str]) -> None:
    t.path.write_text("\n".join(rows) + "\n")


def test_intact_trail_verifies(trail: AuditTrail):
    report = trail.verify()
    assert report.ok and report.count == 5


def test_edit_is_detected_at_the_edited_record(trail: AuditTrail):
    rows = lines(trail)
    rows[2] = rows[2].replace('"alice"', '"mallory"')
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 3
    assert "record edited" in report.reason


def test_edit_with_recomputed_hash_is_caught_by_chain(trail: AuditTrail):
    from suite.audit.record import AuditRecord

    rows = lines(trail)
    rec = AuditRecord.from_json(rows[1])
    forged = AuditRecord(**{**rec.body(), "outcome": "approved"})
    forged = AuditRecord(**{**forged.body(), "hash": forged.compute_hash(),
                            "signature": rec.signature})
    rows[1] = forged.to_json()
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 3  # record 3's prev_hash no longer matches


def test_deletion_is_detected(trail: AuditTrail):
    rows = lines(trail)
    del rows[1]
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 2 and "seq 3 where 2" in report.reason


def test_truncation_of_the_tail_is_detected_by_head(trail: AuditTrail):
    write(trail, lines(trail)[:-2])
    report = trail.verify()
    assert not report.ok and "HEAD says the last record is seq 5" in report.reason


def test_insertion_is_detected(trail: AuditTrail):
    rows = lines(trail)
    rows.insert(2, rows[1])
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 3


def test_reorder_is_detected(trail: AuditTrail):
    rows = lines(trail)
    rows[1], rows[2] = rows[2], rows[1]
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 2


def test_forged_signature_is_detected(trail: AuditTrail):
    rows = lines(trail)
    data = json.loads(rows[3])
    other = json.loads(rows[0])
    data["signature"] = other["signature"]  # a real signature, but over another record
    rows[3] = json.dumps(data, sort_keys=True)
    write(trail, rows)
    report = trail.verify()
    assert not report.ok and report.first_bad == 4 and "signature" in report.reason


def test_inputs_are_stored_only_as_digest(trail: AuditTrail):
    trail.append(actor="bob", action="secret.write", subject="x", inputs={"token": "hunter2"})
    assert "hunter2" not in trail.path.read_text()


APPENDER = """
import sys
from pathlib import Path
from suite.audit import AuditTrail
from suite.audit.signer import TransitSigner
from suite.settings import load
from suite.audit.anchor import VaultAnchor, head_path
from suite.vault import Purpose, signer_client
signer = TransitSigner(signer_client(load(), Purpose.AUDIT))
t = AuditTrail(Path(sys.argv[1]), signer, VaultAnchor(signer.client, head_path(Path(sys.argv[1]))))
for i in range(int(sys.argv[3])):
    t.append(actor=sys.argv[2], action="test.concurrent", subject=str(i))
"""


def test_two_processes_appending_at_once_keep_one_chain(platform_env, tmp_path: Path, platform):
    directory = tmp_path / "shared-audit"
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(directory), name, "40"],
                         env=platform_env)
        for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    from suite.audit.anchor import VaultAnchor, head_path

    signer = TransitSigner(signer_client(platform, Purpose.AUDIT))
    t = AuditTrail(directory, signer, VaultAnchor(signer.client, head_path(directory)))
    report = t.verify()
    assert report.ok and report.count == 80
    assert report.anchor == "HEAD counter in Vault at record 80"  # each CAS conflict re-read
    assert [r.seq for r in t.records()] == list(range(1, 81))


def test_cli_verify_names_first_bad_record_after_hand_edit(platform: Settings, platform_env):
    from suite import audit

    audit.append(platform, action="test.cli", subject="one")
    audit.append(platform, action="test.cli", subject="two")
    ok = subprocess.run([sys.executable, "-m", "suite.cli", "audit", "verify"], env=platform_env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    path = platform.dir("audit", "audit.jsonl")
    original = path.read_text()
    rows = original.splitlines()
    bad_seq = json.loads(rows[-2])["seq"]
    rows[-2] = rows[-2].replace('"test.cli"', '"test.CLI"')
    path.write_text("\n".join(rows) + "\n")
    try:
        bad = subprocess.run([sys.executable, "-m", "suite.cli", "audit", "verify"],
                             env=platform_env, capture_output=True, text=True)
        assert bad.returncode == 1
        assert f"INVALID at record {len(rows) - 1}" in bad.stdout
        assert f"seq {bad_seq}" in bad.stdout
    finally:
        path.write_text(original)


@pytest.fixture
def small_home(platform: Settings, tmp_path: Path) -> Iterator[Path]:
    """A SUITE_HOME whose ``audit/`` is a 128 KiB tmpfs and which talks to the session's Vault
    (its ports come from the environment, its admin token through a link), so the real `suite
    audit verify` reads the small trail."""
    home = tmp_path / "small-home"
    audit_dir = home / "audit"
    audit_dir.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0700", "tmpfs",
                              str(audit_dir)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs ({mounted.stderr.strip() or 'not permitted'}): "
                    f"the disk-full test needs root (or CAP_SYS_ADMIN) to mount one")
    (home / "vault").symlink_to(platform.dir("vault"))
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(audit_dir)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_audit_disk_is_a_clear_error_and_appends_work_again_once_space_returns(
        platform: Settings, platform_env: dict[str, str], small_home: Path):
    t = AuditTrail(small_home / "audit", TransitSigner(signer_client(platform, Purpose.AUDIT)))
    for i in range(3):
        t.append(actor="alice", action="stage.build", subject=f"img-{i}")
    filler = _fill(t.directory)
    before = (t.path.read_bytes(), t.head_path.read_bytes())
    failures = []
    for i in range(8):  # the first appends may still fit in the file's last page
        try:
            t.append(actor="alice", action="release.start", subject=f"svc-{i}")
        except AuditError as exc:
            failures.append(str(exc))
            break
        before = (t.path.read_bytes(), t.head_path.read_bytes())
    assert failures, "the full tmpfs never refused an append"
    assert "No space left on device (ENOSPC)" in failures[0]
    assert str(t.directory) in failures[0] and "free of 128.0 KiB" in failures[0]
    assert (t.path.read_bytes(), t.head_path.read_bytes()) == before  # nothing half-written
    assert t.verify().ok

    filler.unlink()  # space is back
    t.append(actor="alice", action="release.start", subject="svc-after")
    with open(t.path, "ab") as fh:  # a crash mid-append: a torn last line
        fh.write(t.path.read_bytes().splitlines()[-1][:50])
    t.append(actor="alice", action="release.end", subject="svc-after")
    actions = [r.action for r in t.records()]
    assert actions[-3:] == ["release.start", "audit.repair", "release.end"]
    assert "dropped 50 bytes" in t.records()[-2].subject
    env = {**platform_env, "SUITE_HOME": str(small_home)}
    verified = subprocess.run([sys.executable, "-m", "suite.cli", "audit", "verify"], env=env,
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{len(actions)} records" in verified.stdout


def test_a_log_rolled_back_with_its_old_head_fails_verify_against_the_vault_counter(
        platform: Settings, tmp_path: Path):
    from suite.audit.anchor import VaultAnchor, head_path

    directory = tmp_path / "anchored"
    signer = TransitSigner(signer_client(platform, Purpose.AUDIT))
    t = AuditTrail(directory, signer, VaultAnchor(signer.client, head_path(directory)))
    for i in range(3):
        t.append(actor="alice", action="stage.build", subject=f"img-{i}")
    report = t.verify()
    assert report.ok and report.anchor == "HEAD counter in Vault at record 3"
    old = (t.path.read_bytes(), t.head_path.read_bytes())
    for i in range(2):
        t.append(actor="alice", action="release.start", subject=f"svc-{i}")
    t.path.write_bytes(old[0])
    t.head_path.write_bytes(old[1])
    fresh = AuditTrail(directory, signer, VaultAnchor(signer.client, head_path(directory)))
    report = fresh.verify()
    assert not report.ok and report.first_bad == 4
    assert "has 3 records but Vault holds a HEAD at record 5" in report.reason


def test_the_platform_trail_anchors_its_counter_and_a_torn_line_repair_keeps_it(
        platform: Settings, tmp_path: Path):
    from suite import audit

    t = audit.trail(platform)
    t.append(actor="alice", action="test.anchor", subject="one")
    with open(t.path, "ab") as fh:  # a torn last line: the next append repairs it
        fh.write(t.path.read_bytes().splitlines()[-1][:40])
    rec = t.append(actor="alice", action="test.anchor", subject="two")
    assert [r.action for r in t.records()][-2:] == ["audit.repair", "test.anchor"]
    report = audit.verify(platform)
    assert report.ok and report.anchor == f"HEAD counter in Vault at record {rec.seq}"
