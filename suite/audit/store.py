"""The append-only, hash-chained, signed audit trail.

One JSON line per record in ``<home>/audit/audit.jsonl``. An exclusive ``flock`` on a lock file
serialises appends from any number of processes into one chain. ``HEAD`` holds the signed seq and
hash of the last record, so cutting records off the end is detected too.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite.audit.record import GENESIS, AuditRecord, digest
from suite.audit.signer import Signer
from suite.errors import AuditError
from suite.platform.files import atomic_write


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    first_bad: int | None = None  # 1-based line number of the first bad record
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit trail OK: {self.count} records, chain and signatures valid"
        return f"audit trail INVALID at record {self.first_bad}: {self.reason}"


class AuditTrail:
    def __init__(self, directory: Path, signer: Signer) -> None:
        self.directory = directory
        self.signer = signer
        self.path = directory / "audit.jsonl"
        self.head_path = directory / "HEAD"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "audit.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _last(self) -> AuditRecord | None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                block = min(size, 65536)
                while True:
                    fh.seek(size - block)
                    lines = fh.read(block).splitlines()
                    if len(lines) > 1 or block == size:
                        break
                    block = min(size, block * 2)
        except FileNotFoundError:
            return None
        for line in reversed(lines):
            if line.strip():
                try:
                    return AuditRecord.from_json(line.decode())
                except ValueError as exc:
                    raise AuditError(
                        f"the last line of {self.path} is not a valid record; run "
                        f"`suite audit verify` before appending"
                    ) from exc
        return None

    def append(
        self, *, actor: str, action: str, subject: str, inputs: Any = None, outcome: str = "ok"
    ) -> AuditRecord:
        for name, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if not value or not isinstance(value, str):
                raise AuditError(f"audit {name} must be a non-empty string (got {value!r})")
        with self._locked():
            last = self._last()
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
            record = AuditRecord(**{**record.body(), "hash": hashed, "signature": signature})
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(record.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            head = {"seq": record.seq, "hash": record.hash}
            head_sig = self.signer.sign(json.dumps(head, sort_keys=True).encode())
            atomic_write(self.head_path, json.dumps({**head, "signature": head_sig}))
        return record

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
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def verify(self) -> VerifyReport:
        with self._locked():
            return self._verify()

    def _verify(self) -> VerifyReport:
        lines = self._lines()
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
        return self._verify_head(records)

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

    def since(self, when: datetime | None) -> list[AuditRecord]:
        records = self.records()
        if when is None:
            return records
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return [r for r in records if datetime.fromisoformat(r.time) >= when]
