"""The append-only, hash-chained, signed audit trail.

One JSON line per record in ``<home>/audit/audit.jsonl``. An exclusive ``flock`` on a lock file
serialises appends from any number of processes into one chain. ``HEAD`` holds the signed seq and
hash of the last record, so cutting records off the end is detected too; an :class:`Anchor`
(Vault KV, :mod:`suite.audit.anchor`) holds the HEAD's seq outside the file, so a log cut back
together with its old HEAD is detected as well.

An append is all or nothing. Both signatures (record and HEAD) are made before the disk is
touched, so Vault being down changes nothing; a write that fails (disk full, I/O error) puts the
file back to its bytes before the append and raises an :class:`AuditError` naming the path and
the free space. A last line without its newline (a torn write: the process was killed mid-append,
or the restore itself failed) is dropped by the next append, which first appends an
``audit.repair`` record naming the bytes dropped, so the chain verifies again and the repair is
itself on the record.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite.audit.anchor import Anchor
from suite.audit.record import GENESIS, AuditRecord, digest
from suite.audit.signer import Signer
from suite.errors import AuditError, StorageError
from suite.platform.files import atomic_write, storage_error

#: an append needs a few KiB: with less than this free, ``check`` calls the trail's disk full
MIN_FREE_BYTES = 1 << 20
REPAIR_ACTOR = "suite"
REPAIR_ACTION = "audit.repair"


@dataclass(frozen=True)
class Tail:
    """The end of the trail file: where its complete lines end and what follows them."""

    size: int
    torn_at: int  # offset just past the last newline (== size when nothing is torn)
    last_line: bytes  # the last complete, non-blank line (b"" when there is none)

    @property
    def torn(self) -> int:
        return self.size - self.torn_at


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    first_bad: int | None = None  # 1-based line number of the first bad record
    reason: str = ""
    anchor: str = ""  # what the check against the counter in Vault found

    def __str__(self) -> str:
        if self.ok:
            note = f"; {self.anchor}" if self.anchor else ""
            return f"audit trail OK: {self.count} records, chain and signatures valid{note}"
        return f"audit trail INVALID at record {self.first_bad}: {self.reason}"


class AuditTrail:
    def __init__(self, directory: Path, signer: Signer, anchor: Anchor | None = None) -> None:
        self.directory = directory
        self.signer = signer
        self.anchor = anchor
        self.path = directory / "audit.jsonl"
        self.head_path = directory / "HEAD"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = open(self.directory / "audit.lock", "a")  # closed below
        except OSError as exc:
            raise self._disk_error(self.directory / "audit.lock", exc) from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _disk_error(self, path: Path, exc: OSError) -> AuditError:
        detail = str(exc) if isinstance(exc, StorageError) else str(storage_error(path, exc))
        return AuditError(f"the audit record was not written, so the action that needed it "
                          f"must not proceed: {detail}")

    def _tail(self) -> Tail:
        try:
            fh = open(self.path, "rb")  # closed below
        except FileNotFoundError:
            return Tail(0, 0, b"")
        with fh:
            size = fh.seek(0, os.SEEK_END)
            block = 65536
            while True:
                start = max(0, size - block)
                fh.seek(start)
                data = fh.read(size - start)
                end = data.rfind(b"\n")
                complete = data[:end + 1] if end >= 0 else b""
                lines = [line for line in complete.splitlines() if line.strip()]
                # the first line of a block may be cut by the block's start: need two lines
                if start == 0 or (end >= 0 and len(lines) > 1):
                    torn_at = start + end + 1 if end >= 0 else 0
                    return Tail(size, torn_at, lines[-1] if lines else b"")
                block *= 2

    def _last(self, tail: Tail) -> AuditRecord | None:
        if not tail.last_line:
            return None
        try:
            return AuditRecord.from_json(tail.last_line.decode())
        except ValueError as exc:
            raise AuditError(
                f"the last record of {self.path} is not a valid record (edited?); run "
                f"`suite audit verify` before appending"
            ) from exc

    def _next(self, last: AuditRecord | None, *, actor: str, action: str, subject: str,
              inputs: Any, outcome: str) -> AuditRecord:
        record = AuditRecord(
            seq=(last.seq + 1) if last else 1,
            time=datetime.now(UTC).isoformat(timespec="microseconds"),
            actor=actor,
            action=action,
            subject=subject,
            inputs_digest=digest(inputs if inputs is not None else {}),
            outcome=outcome,
            prev_hash=last.hash if last else GENESIS,
        )
        hashed = record.compute_hash()
        signature = self.signer.sign(hashed.encode())
        return AuditRecord(**{**record.body(), "hash": hashed, "signature": signature})

    def _repair_record(self, last: AuditRecord | None, tail: Tail) -> AuditRecord:
        with open(self.path, "rb") as fh:
            fh.seek(tail.torn_at)
            dropped = fh.read(tail.torn)
        return self._next(
            last, actor=REPAIR_ACTOR, action=REPAIR_ACTION,
            subject=f"{self.path.name}: dropped {tail.torn} bytes at offset {tail.torn_at} "
                    f"(a torn last line without its newline)",
            inputs={"offset": tail.torn_at, "bytes": tail.torn,
                    "sha256": hashlib.sha256(dropped).hexdigest()},
            outcome="repaired",
        )

    def check(self) -> None:
        """Raise :class:`AuditError` unless a record could be written now: the trail's disk has
        room and the signer signs. For an action whose record can only be written after it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.directory).free
        except OSError as exc:
            raise self._disk_error(self.directory, exc) from exc
        if free < MIN_FREE_BYTES:
            raise self._disk_error(self.path, OSError(errno.ENOSPC, "less than 1 MiB free"))
        self.signer.sign(b"suite audit check")

    def append(
        self, *, actor: str, action: str, subject: str, inputs: Any = None, outcome: str = "ok"
    ) -> AuditRecord:
        for name, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if not value or not isinstance(value, str):
                raise AuditError(f"audit {name} must be a non-empty string (got {value!r})")
        with self._locked():
            try:
                tail = self._tail()
            except OSError as exc:
                raise self._disk_error(self.path, exc) from exc
            last = self._last(tail)
            new: list[AuditRecord] = []
            if tail.torn:
                new.append(self._repair_record(last, tail))
                last = new[-1]
            record = self._next(last, actor=actor, action=action, subject=subject,
                                inputs=inputs, outcome=outcome)
            new.append(record)
            head = {"seq": record.seq, "hash": record.hash}
            head_sig = self.signer.sign(json.dumps(head, sort_keys=True).encode())
            # every Vault call is done: only now is the disk touched
            self._write(tail, "".join(r.to_json() + "\n" for r in new).encode(),
                        json.dumps({**head, "signature": head_sig}))
            if self.anchor is not None:  # inside the lock: counters reach Vault in order
                self.anchor.advance(record.seq, record.hash)
        return record

    def _write(self, tail: Tail, data: bytes, head: str) -> None:
        """Write ``data`` over the torn tail (if any) and then HEAD; on failure put the file back
        to its old bytes, so a failed append leaves nothing that wedges the next one."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._disk_error(self.path, exc) from exc
        try:
            torn = os.pread(fd, tail.torn, tail.torn_at) if tail.torn else b""
            try:
                _pwrite_all(fd, data, tail.torn_at)
                os.ftruncate(fd, tail.torn_at + len(data))
                os.fsync(fd)
            except OSError as exc:
                _restore(fd, tail, torn)
                raise self._disk_error(self.path, exc) from exc
            try:
                atomic_write(self.head_path, head)
            except OSError as exc:
                _restore(fd, tail, torn)
                raise self._disk_error(self.head_path, exc) from exc
        finally:
            os.close(fd)

    def records(self) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for line in self._lines():
            try:
                out.append(AuditRecord.from_json(line))
            except ValueError:
                continue
        return out

    def _lines(self) -> list[str]:
        try:
            # a torn tail may end inside a multi-byte character: verify names it, never crashes
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def verify(self) -> VerifyReport:
        with self._locked():
            return self._verify()

    def _verify_anchor(self, anchor: Anchor, records: list[AuditRecord]) -> VerifyReport:
        """The verified ``records`` against the counter in Vault. Raises :class:`AuditError`
        when Vault cannot be asked, as a signature check does."""
        count = len(records)
        held = anchor.read()
        if held is None:
            return VerifyReport(True, count, anchor="no HEAD counter in Vault yet (the "
                                "next append anchors it)")
        at = records[held.seq - 1] if 0 < held.seq <= count else None
        if at is None or at.hash != held.hash:
            return VerifyReport(
                False, count, min(held.seq, count + 1),
                f"the audit trail has {count} records but Vault holds a HEAD at record "
                f"{held.seq} (hash {held.hash[:16]}…): the log was cut back or replaced",
            )
        return VerifyReport(True, count, anchor=f"HEAD counter in Vault at record {held.seq}")

    def _verify(self) -> VerifyReport:
        lines = self._lines()
        torn = self._torn_report(len(lines))
        if torn is not None:
            return torn
        records: list[AuditRecord] = []
        prev_hash, expected_seq = GENESIS, 1
        for number, line in enumerate(lines, start=1):
            try:
                rec = AuditRecord.from_json(line)
            except ValueError as exc:
                return VerifyReport(False, len(lines), number, f"not a valid record ({exc})")
            if rec.seq != expected_seq:
                return VerifyReport(
                    False, len(lines), number,
                    f"seq {rec.seq} where {expected_seq} was expected (record deleted, inserted "
                    f"or reordered)",
                )
            if rec.prev_hash != prev_hash:
                return VerifyReport(
                    False, len(lines), number,
                    f"seq {rec.seq}: prev_hash does not match the hash of the record before",
                )
            if rec.compute_hash() != rec.hash:
                return VerifyReport(
                    False, len(lines), number,
                    f"seq {rec.seq}: content does not match its hash (record edited)",
                )
            records.append(rec)
            prev_hash, expected_seq = rec.hash, expected_seq + 1
        valid = self.signer.verify_many([(r.hash.encode(), r.signature) for r in records])
        for number, (rec, ok) in enumerate(zip(records, valid, strict=True), start=1):
            if not ok:
                return VerifyReport(
                    False, len(lines), number, f"seq {rec.seq}: signature is not valid (forged)"
                )
        report = self._verify_head(records)
        if not report.ok or self.anchor is None:
            return report
        return self._verify_anchor(self.anchor, records)

    def _verify_head(self, records: list[AuditRecord]) -> VerifyReport:
        count = len(records)
        try:
            head = json.loads(self.head_path.read_text())
        except FileNotFoundError:
            if count == 0:
                return VerifyReport(True, 0)
            return VerifyReport(False, count, count, "HEAD file is missing")
        except ValueError:
            return VerifyReport(False, count, count, "HEAD file is not valid JSON")
        body = {"seq": head.get("seq"), "hash": head.get("hash")}
        signed = self.signer.verify_many(
            [(json.dumps(body, sort_keys=True).encode(), str(head.get("signature", "")))]
        )[0]
        if not signed:
            return VerifyReport(False, count, count, "HEAD signature is not valid")
        last_seq = records[-1].seq if records else 0
        if body["seq"] != last_seq:
            return VerifyReport(
                False, count, min(count + 1, int(body["seq"] or 0)) or 1,
                f"HEAD says the last record is seq {body['seq']} but the trail ends at seq "
                f"{last_seq} (records removed from the end)",
            )
        if records and body["hash"] != records[-1].hash:
            return VerifyReport(False, count, count, "HEAD hash differs from the last record")
        return VerifyReport(True, count)

    def _torn_report(self, count: int) -> VerifyReport | None:
        tail = self._tail()
        if not tail.torn:
            return None
        return VerifyReport(
            False, count, count,
            f"the last line is torn ({tail.torn} bytes at offset {tail.torn_at} without a "
            f"newline: an append that did not complete, e.g. a crash or a full disk); the next "
            f"append drops it and records {REPAIR_ACTION}",
        )

    def since(self, when: datetime | None) -> list[AuditRecord]:
        records = self.records()
        if when is None:
            return records
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return [r for r in records if datetime.fromisoformat(r.time) >= when]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:  # never loop on a device that takes nothing
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[written:], offset + written


def _restore(fd: int, tail: Tail, torn: bytes) -> None:
    """Best effort: the file's bytes as they were before the failed append."""
    try:
        os.ftruncate(fd, tail.torn_at)
        if torn:
            _pwrite_all(fd, torn, tail.torn_at)
        os.fsync(fd)
    except OSError:
        pass  # what is left is a torn tail: the next append repairs it
