"""The scan gate: pure evaluation of a :class:`ScanReport` against ``policies/scan.yaml``.

Every decision carries its reasons; a blocked gate raises :class:`GateBlocked` listing all of
them. A scan that failed, or ran without a vulnerability DB, never passes silently: errors
always block, and a missing DB blocks or produces a loud warning, as the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policies.files import read_yaml
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
    approver: str = Field(min_length=1)
    expires: date
    location: str | None = None

    def matches(self, finding: Finding) -> bool:
        if finding.id != self.id:
            return False
        return self.location is None or fnmatchcase(finding.location, self.location)

    def describe(self) -> str:
        return f"{self.id} (approved by {self.approver}, until {self.expires}): {self.reason}"


class ScanPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_severity: dict[ScanKind, str] = Field(default_factory=dict)
    unknown_as: Severity = Severity.HIGH
    vuln_db_unavailable: Literal["warn", "fail"] = "warn"
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


def load(path: Path = DEFAULT_POLICY) -> ScanPolicy:
    data = read_yaml(path, "scan policy") or {}
    try:
        return ScanPolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"scan policy {path} is invalid: {exc}") from exc


def _effective(finding: Finding, policy: ScanPolicy) -> Severity:
    return policy.unknown_as if finding.severity is Severity.UNKNOWN else finding.severity


def evaluate(report: ScanReport, policy: ScanPolicy, today: date) -> GateDecision:
    reasons: list[str] = [f"scan error: {err}" for err in report.errors]
    warnings: list[str] = []
    used: dict[str, None] = {}
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
        waivers = [w for w in policy.waivers if w.matches(finding)]
        live = [w for w in waivers if today <= w.expires]
        if live:
            used[live[0].describe()] = None
            continue
        why = f"{finding.describe()} [target {finding.target}] exceeds max {allowed_txt}"
        if waivers:
            w = waivers[0]
            why += (f"; waiver {w.id} by {w.approver} expired on {w.expires} and no longer "
                    f"applies")
        reasons.append(why)
    return GateDecision(not reasons, tuple(reasons), tuple(used), tuple(warnings))


def enforce(decision: GateDecision) -> GateDecision:
    """Raise :class:`GateBlocked` with every reason when the gate does not allow the stage."""
    if not decision.allowed:
        raise GateBlocked("scan", list(decision.reasons))
    return decision
