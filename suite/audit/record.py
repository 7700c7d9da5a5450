"""Audit records and their canonical form.

``hash = sha256(canonical JSON of the record without hash and signature)``; the canonical form
has sorted keys, no insignificant whitespace and UTF-8 text, so any edit changes the hash.
Inputs are never stored: only their digest, so a secret passed to a stage cannot leak here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "time", "actor", "action", "subject", "inputs_digest", "outcome",
          "prev_hash", "hash", "signature")


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def digest(data: Any) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    actor: str
    action: str
    subject: str
    inputs_digest: str
    outcome: str
    prev_hash: str
    hash: str = ""
    signature: str = ""

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("hash")
        data.pop("signature")
        return data

    def compute_hash(self) -> str:
        return digest(self.body())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> AuditRecord:
        data = json.loads(line)
        if not isinstance(data, dict) or set(data) != set(FIELDS):
            raise ValueError(f"fields {sorted(data) if isinstance(data, dict) else data!r}")
        return cls(**data)
