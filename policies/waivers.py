"""Signed scan waivers: what is signed, and whether a waiver counts (pure; the signature check
itself is passed in, :mod:`tasks.waivers` asks Vault).

A waiver counts only if it carries a signature by the transit key ``suite-waiver``, which only an
approver may sign with (:data:`suite.vault_policy.WAIVER_SIGN_POLICY`), over its canonical
content: finding id, location, service, reason, expiry, approver and signing time. Changing any of
them after signing breaks the signature. The checks, in the order a waiver is refused:

=============  ==============================================================================
unsigned       no signature (a waiver written before signing, or by hand): sign it
wrong key      signed by another key than ``suite-waiver`` (the audit or provenance key, say)
tampered       the signature does not match the content (edited after signing, or forged)
too long       expiry more than the policy's ``waiver_max_days`` after the signing day
expired        past its expiry day
=============  ==============================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from suite.vault_policy import LEGACY_SIGN_KEY, WAIVER_KEY

if TYPE_CHECKING:
    from policies.scan import Waiver

SIGNATURE_PREFIX = "transit:"
FORMAT = 1
#: a function that checks (content, Vault signature) pairs with ``suite-waiver``, in one batch
Verify = Callable[[Sequence[tuple[bytes, str]]], Sequence[bool]]


class WaiverStatus(StrEnum):
    VALID = "valid"
    UNSIGNED = "unsigned"
    WRONG_KEY = "wrong key"
    TAMPERED = "tampered"
    TOO_LONG = "too long"
    EXPIRED = "expired"


@dataclass(frozen=True)
class WaiverCheck:
    waiver: Waiver
    status: WaiverStatus
    reason: str  # why it does not count; empty when valid

    @property
    def valid(self) -> bool:
        return self.status is WaiverStatus.VALID


def canonical(waiver: Waiver) -> bytes:
    """The bytes the approver signs: every field that decides what the waiver lets through."""
    return json.dumps({
        "v": FORMAT, "id": waiver.id, "location": waiver.location, "service": waiver.service,
        "reason": waiver.reason, "expires": waiver.expires.isoformat(),
        "approver": waiver.approver, "signed_at": waiver.signed_at,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def split(signature: str) -> tuple[str, str]:
    """(key name, Vault's own ``vault:vN:…``) of a stored ``transit:KEY:vault:vN:…``."""
    if signature.startswith(SIGNATURE_PREFIX):
        key, _, vault_sig = signature[len(SIGNATURE_PREFIX):].partition(":")
        return key, vault_sig
    return LEGACY_SIGN_KEY, signature


def sign_hint(source: str) -> str:
    return (f"an approver signs it with `suite waiver sign {source}` (docs/security.md, "
            f"\"Signed scan waivers\")")


def signed_day(waiver: Waiver) -> date | None:
    try:
        return datetime.fromisoformat(waiver.signed_at.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def check_all(waivers: Iterable[Waiver], verify: Verify, today: date, max_days: int,
              source: str = "policies/scan.yaml") -> dict[Waiver, WaiverCheck]:
    """Every waiver's :class:`WaiverCheck`; ``verify`` is called once, for the waivers signed
    with the waiver key."""
    checks: dict[Waiver, WaiverCheck] = {}
    to_verify: list[Waiver] = []
    for w in waivers:
        key = split(w.signature)[0] if w.signature else ""
        if not w.signature or not w.approver or not w.signed_at:
            checks[w] = WaiverCheck(w, WaiverStatus.UNSIGNED, f"waiver {w.id} is not signed "
                                    f"(signature, approver or signed_at missing): "
                                    f"{sign_hint(source)}")
        elif key != WAIVER_KEY:
            checks[w] = WaiverCheck(w, WaiverStatus.WRONG_KEY, f"waiver {w.id} is signed with "
                                    f"key {key!r}, not the waiver key {WAIVER_KEY!r}: it does "
                                    f"not count; {sign_hint(source)}")
        else:
            to_verify.append(w)
    results = verify([(canonical(w), split(w.signature)[1]) for w in to_verify]) \
        if to_verify else []
    for w, ok in zip(to_verify, results, strict=True):
        checks[w] = _dated(w, today, max_days) if ok else WaiverCheck(
            w, WaiverStatus.TAMPERED, f"waiver {w.id} (signed by {w.approver}) does not match "
            f"its signature: it was changed after signing, or the signature is forged; "
            f"restore it, or have an approver sign the new content")
    return checks


def _dated(w: Waiver, today: date, max_days: int) -> WaiverCheck:
    day = signed_day(w)
    if day is None:  # a signed but unreadable time cannot be: the signature covers it
        return WaiverCheck(w, WaiverStatus.TAMPERED,
                           f"waiver {w.id} has signed_at {w.signed_at!r}, not an ISO time")
    if (w.expires - day).days > max_days:
        return WaiverCheck(w, WaiverStatus.TOO_LONG, f"waiver {w.id} (signed by {w.approver} "
                           f"on {day}) runs until {w.expires}, {(w.expires - day).days} days: "
                           f"more than the policy's waiver_max_days ({max_days}); sign a "
                           f"shorter one")
    if today > w.expires:
        return WaiverCheck(w, WaiverStatus.EXPIRED, f"waiver {w.id} by {w.approver} expired on "
                           f"{w.expires} and no longer applies")
    return WaiverCheck(w, WaiverStatus.VALID, "")


def signers(checks: Mapping[Waiver, WaiverCheck]) -> list[str]:
    return sorted({c.waiver.approver for c in checks.values() if c.valid})
