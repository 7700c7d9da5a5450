"""The audit trail's failure paths with an HMAC signer standing in for Vault transit: a torn last
line is repaired (and the repair recorded) by the next append, a write that fails (disk full, I/O
error) leaves the file exactly as it was, and a signer that fails touches nothing."""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
from pathlib import Path

import pytest

from suite.audit import store as store_mod
from suite.audit.anchor import Anchored
from suite.audit.store import REPAIR_ACTION, AuditTrail
from suite.errors import AuditError

KEY = b"k"


class HmacSigner:
    def __init__(self) -> None:
        self.down = False

    def sign(self, data: bytes) -> str:
        if self.down:
            raise AuditError("signing the audit record with transit key 'suite-sign' failed")
        return hmac.new(KEY, data, hashlib.sha256).hexdigest()

    def verify_many(self, items: list[tuple[bytes, str]]) -> list[bool]:
        return [hmac.compare_digest(hmac.new(KEY, d, hashlib.sha256).hexdigest(), s)
                for d, s in items]


@pytest.fixture
def signer() -> HmacSigner:
    return HmacSigner()


@pytest.fixture
def trail(tmp_path: Path, signer: HmacSigner) -> AuditTrail:
    t = AuditTrail(tmp_path / "audit", signer)
    for i in range(3):
        t.append(actor="alice", action="stage.build", subject=f"img-{i}", inputs={"i": i})
    return t


def snapshot(t: AuditTrail) -> tuple[bytes, bytes]:
    return t.path.read_bytes(), t.head_path.read_bytes()


def test_a_torn_last_line_fails_verify_by_name_and_the_next_append_repairs_it(trail):
    line = trail.path.read_bytes().splitlines()[-1]
    with open(trail.path, "ab") as fh:  # a crash mid-append: half a record, no newline
        fh.write(line[: len(line) // 2])
    torn = len(line) // 2
    report = trail.verify()
    assert not report.ok and report.first_bad == 4
    assert f"torn ({torn} bytes" in report.reason and REPAIR_ACTION in report.reason

    rec = trail.append(actor="bob", action="release.start", subject="svc")
    records = trail.records()
    assert [r.action for r in records] == ["stage.build"] * 3 + [REPAIR_ACTION, "release.start"]
    repair = records[3]
    assert repair.outcome == "repaired"
    assert f"dropped {torn} bytes at offset" in repair.subject
    assert rec.seq == 5 and rec.prev_hash == repair.hash
    assert trail.verify().ok


def test_a_trail_that_is_only_a_torn_line_is_repaired_from_the_genesis(tmp_path, signer):
    t = AuditTrail(tmp_path / "audit", signer)
    t.directory.mkdir()
    t.path.write_bytes('{"seq": 1, "actor": "\u00e9'.encode()[:-1])  # cut inside a character
    assert "torn" in t.verify().reason
    t.append(actor="a", action="x.y", subject="s")
    assert [r.action for r in t.records()] == [REPAIR_ACTION, "x.y"]
    assert t.verify().ok


def _failing_pwrite(code: int, after: int):
    """os.pwrite that writes ``after`` bytes, then fails once as a full (or failing) disk does;
    the restore that follows gets the space the truncation freed."""
    real = os.pwrite
    state = {"left": after, "failed": False}

    def pwrite(fd: int, data, offset: int) -> int:
        if state["failed"]:
            return real(fd, data, offset)
        if state["left"] <= 0:
            state["failed"] = True
            raise OSError(code, os.strerror(code))
        n = real(fd, bytes(data[: state["left"]]), offset)
        state["left"] -= n
        return n

    return pwrite


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_names_the_path_and_free_space_and_leaves_the_file_as_it_was(
        trail, monkeypatch, code):
    before = snapshot(trail)
    monkeypatch.setattr(store_mod.os, "pwrite", _failing_pwrite(code, after=40))
    with pytest.raises(AuditError) as info:
        trail.append(actor="bob", action="release.start", subject="svc")
    text = str(info.value)
    assert str(trail.path) in text and "free of" in text
    assert errno.errorcode[code] in text
    assert "must not proceed" in text
    assert snapshot(trail) == before
    monkeypatch.undo()  # space is back
    assert trail.append(actor="bob", action="release.start", subject="svc").seq == 4
    assert trail.verify().ok


def test_a_failed_head_write_takes_the_appended_line_back(trail, monkeypatch):
    before = snapshot(trail)

    def full(path: Path, text: str, mode: int = 0o644) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_mod, "atomic_write", full)
    with pytest.raises(AuditError, match=r"HEAD failed: No space left on device \(ENOSPC\)"):
        trail.append(actor="bob", action="release.start", subject="svc")
    assert snapshot(trail) == before
    assert trail.verify().ok


def test_a_failed_write_over_a_torn_tail_keeps_the_torn_bytes_for_the_next_repair(
        trail, monkeypatch):
    with open(trail.path, "ab") as fh:
        fh.write(b'{"seq": 4, "ac')
    before = snapshot(trail)
    monkeypatch.setattr(store_mod.os, "pwrite", _failing_pwrite(errno.ENOSPC, after=10))
    with pytest.raises(AuditError):
        trail.append(actor="bob", action="release.start", subject="svc")
    monkeypatch.undo()
    assert snapshot(trail) == before
    trail.append(actor="bob", action="release.start", subject="svc")
    assert [r.action for r in trail.records()][-2:] == [REPAIR_ACTION, "release.start"]
    assert trail.verify().ok


def test_vault_unable_to_sign_changes_nothing_on_disk(trail, signer):
    with open(trail.path, "ab") as fh:
        fh.write(b'{"torn')
    before = snapshot(trail)
    signer.down = True
    with pytest.raises(AuditError, match="transit key"):
        trail.append(actor="bob", action="release.start", subject="svc")
    assert snapshot(trail) == before


def test_an_edited_complete_last_line_is_not_repaired_but_refused(trail):
    rows = trail.path.read_text().splitlines()
    rows[-1] = rows[-1][:-5]
    trail.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(AuditError, match=r"not a valid record .*suite audit verify"):
        trail.append(actor="bob", action="x.y", subject="s")


def test_check_passes_when_a_record_could_be_written(trail):
    trail.check()


def test_check_refuses_when_vault_cannot_sign(trail, signer):
    signer.down = True
    with pytest.raises(AuditError, match="transit key"):
        trail.check()


def test_check_refuses_a_nearly_full_disk_naming_the_path_and_free_space(trail, monkeypatch):
    class Usage:
        total, used, free = 1 << 20, (1 << 20) - 4096, 4096

    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(AuditError, match=r"audit\.jsonl failed: less than 1 MiB free \(ENOSPC\)"):
        trail.check()


class MemoryAnchor:
    def __init__(self) -> None:
        self.held: Anchored | None = None

    def read(self) -> Anchored | None:
        return self.held

    def advance(self, seq: int, hash: str) -> None:
        if self.held is None or self.held.seq < seq:
            self.held = Anchored(seq, hash, (self.held.version if self.held else 0) + 1)


def test_a_log_cut_back_with_its_old_head_fails_verify_naming_both_counts(tmp_path, signer):
    anchor = MemoryAnchor()
    t = AuditTrail(tmp_path / "audit", signer, anchor)
    for i in range(3):
        t.append(actor="a", action="x.y", subject=str(i))
    old = snapshot(t)
    assert t.verify().ok and "record 3" in t.verify().anchor
    for i in range(2):
        t.append(actor="a", action="x.y", subject=f"more-{i}")
    t.path.write_bytes(old[0])
    t.head_path.write_bytes(old[1])
    report = t.verify()
    assert not report.ok and report.first_bad == 4
    assert "has 3 records but Vault holds a HEAD at record 5" in report.reason
    assert "cut back or replaced" in report.reason


def test_a_replaced_log_of_the_same_length_fails_verify(tmp_path, signer):
    anchor = MemoryAnchor()
    t = AuditTrail(tmp_path / "audit", signer, anchor)
    t.append(actor="a", action="x.y", subject="real")
    anchor_before = anchor.held
    t.path.unlink()
    t.head_path.unlink()
    anchor.held = None
    t.append(actor="a", action="x.y", subject="forged")
    anchor.held = anchor_before
    report = t.verify()
    assert not report.ok and "Vault holds a HEAD at record 1" in report.reason


def test_a_trail_not_yet_anchored_verifies_and_says_so(trail):
    trail.anchor = MemoryAnchor()
    report = trail.verify()
    assert report.ok and "no HEAD counter in Vault yet" in str(report)
