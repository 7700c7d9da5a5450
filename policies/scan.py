"""The scan gate: pure evaluation of a :class:`ScanReport` against ``policies/scan.yaml``.

Every decision carries its reasons; a blocked gate raises :class:`GateBlocked` listing all of
them. A scan that failed, or ran without a vulnerability DB, never passes silently: errors
always block, and a missing DB blocks or produces a loud warning, as the policy says.

A waiver counts only when it is signed by an approver and its checks pass
(:mod:`policies.waivers`); the checks are made before and passed in, so evaluation stays pure.
A waiver a finding needs but that does not count leaves the finding blocking, with the waiver's
reason. A waiver whose signature does not match (tampered, forged, another key) blocks the gate
even when no finding needs it: someone edited a signed policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policies.files import read_yaml
from policies.waivers import WaiverCheck, WaiverStatus
from suite.errors import ConfigError, GateBlocked
from tasks.scanners.base import DbStatus, Finding, ScanKind, ScanReport, Severity

DEFAULT_POLICY = Path(__file__).with_name("scan.yaml")
NONE = "NONE"
DB_WARNING = (
    "VULNERABILITY DB UNAVAILABLE: vulnerabilities were NOT scanned; this is not a clean "
    "vulnerability result (copy a Trivy DB into the cache dir, or set vuln_db_unavailable: fail)"
)


class Waiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date
    location: str | None = None
    #: the one service it applies to; None: every service
    service: str | None = None
    #: set by `suite waiver sign`: the approver's Vault identity, the time, the signature
    approver: str = ""
    signed_at: str = ""
    signature: str = ""

    def matches(self, finding: Finding, service: str | None = None) -> bool:
        if finding.id != self.id:
            return False
        if self.service is not None and self.service != service:
            return False
        return self.location is None or fnmatchcase(finding.location, self.location)

    def describe(self) -> str:
        scope = f" for {self.service}" if self.service else ""
        return (f"{self.id}{scope} (signed by {self.approver} on {self.signed_at[:10]}, until "
                f"{self.expires}): {self.reason}")


class ScanPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_severity: dict[ScanKind, str] = Field(default_factory=dict)
    unknown_as: Severity = Severity.HIGH
    vuln_db_unavailable: Literal["warn", "fail"] = "warn"
    #: the longest a waiver may run, from the day it is signed to its expiry
    waiver_max_days: int = Field(default=90, ge=1, le=3650)
    waivers: tuple[Waiver, ...] = ()

    @field_validator("max_severity")
    @classmethod
    def _severities(cls, value: dict[ScanKind, str]) -> dict[ScanKind, str]:
        allowed = {NONE, *(s.value for s in Severity if s is not Severity.UNKNOWN)}
        for kind, sev in value.items():
            if sev.upper() not in allowed:
                raise ValueError(
                    f"max_severity.{kind.value} is {sev!r} (expected one of {sorted(allowed)})"
                )
        return {k: v.upper() for k, v in value.items()}

    def limit(self, kind: ScanKind) -> int:
        """Highest allowed rank for ``kind``; -1 = nothing allowed. Unlisted kinds: NONE."""
        raw = self.max_severity.get(kind, NONE)
        return -1 if raw == NONE else Severity(raw).rank


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]
    waivers_used: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: the approvers whose signed waivers let a finding through
    waiver_signers: tuple[str, ...] = ()


def load(path: Path = DEFAULT_POLICY) -> ScanPolicy:
    data = read_yaml(path, "scan policy") or {}
    try:
        return ScanPolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"scan policy {path} is invalid: {exc}") from exc


def _effective(finding: Finding, policy: ScanPolicy) -> Severity:
    return policy.unknown_as if finding.severity is Severity.UNKNOWN else finding.severity


FORGED = (WaiverStatus.TAMPERED, WaiverStatus.WRONG_KEY)


def evaluate(report: ScanReport, policy: ScanPolicy, today: date,
             checks: Mapping[Waiver, WaiverCheck] | None = None,
             service: str | None = None) -> GateDecision:
    """The gate. ``checks``: each waiver's signature check (:func:`policies.waivers.check_all`);
    a waiver without one does not count. ``service``: the service scanned, for scoped waivers."""
    checks = checks or {}
    reasons: list[str] = [f"scan error: {err}" for err in report.errors]
    reasons += [c.reason for c in checks.values() if c.status in FORGED]
    warnings: list[str] = []
    used: dict[str, None] = {}
    signers: dict[str, None] = {}
    if not report.targets:
        reasons.append("nothing was scanned (no targets in the report)")
    if report.db_status is DbStatus.UNAVAILABLE:
        if policy.vuln_db_unavailable == "fail":
            reasons.append("vulnerability DB unavailable and policy vuln_db_unavailable=fail")
        else:
            warnings.append(DB_WARNING)
    for finding in report.findings:
        sev = _effective(finding, policy)
        limit = policy.limit(finding.scanner)
        if sev.rank <= limit:
            continue
        allowed_txt = policy.max_severity.get(finding.scanner, NONE)
        waivers = [w for w in policy.waivers if w.matches(finding, service)]
        live = [w for w in waivers if w in checks and checks[w].valid and today <= w.expires]
        if live:
            used[live[0].describe()] = None
            signers[live[0].approver] = None
            continue
        why = f"{finding.describe()} [target {finding.target}] exceeds max {allowed_txt}"
        if waivers:
            w = waivers[0]
            check = checks.get(w)
            why += "; " + (check.reason if check is not None else
                           f"waiver {w.id} was not verified and does not count")
        reasons.append(why)
    return GateDecision(not reasons, tuple(dict.fromkeys(reasons)), tuple(used),
                        tuple(warnings), tuple(signers))


def enforce(decision: GateDecision) -> GateDecision:
    """Raise :class:`GateBlocked` with every reason when the gate does not allow the stage."""
    if not decision.allowed:
        raise GateBlocked("scan", list(decision.reasons))
    return decision
