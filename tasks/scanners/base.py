"""The scanner plugin boundary: a ``Scanner`` turns a target into a :class:`ScanReport`.

Scanners never raise for a failed scan: the failure becomes an entry in ``errors`` and the gate
blocks on it, so an incomplete scan can never look clean. Likewise ``db_status`` says whether
vulnerabilities were looked for at all: a report without a vulnerability database is not a
report without vulnerabilities.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Severity(StrEnum):
    """Ordered by ``rank`` (compare ranks, not strings). UNKNOWN ranks lowest here; the gate
    decides how to treat it (see ``policies/scan.py``)."""

    UNKNOWN = "UNKNOWN"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def parse(cls, raw: str) -> Severity:
        try:
            return cls(raw.upper())
        except ValueError:
            return cls.UNKNOWN


class ScanKind(StrEnum):
    VULN = "vuln"
    SECRET = "secret"  # noqa: S105 - a scanner name
    MISCONFIG = "misconfig"
    LICENSE = "license"


class TargetKind(StrEnum):
    IMAGE = "image"
    REPO = "repo"


class DbStatus(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ScanTarget:
    kind: TargetKind
    ref: str  # an image reference or a directory

    def __str__(self) -> str:
        return f"{self.kind.value} {self.ref}"


@dataclass(frozen=True)
class Finding:
    scanner: ScanKind
    id: str
    severity: Severity
    title: str
    target: str  # the scanned image or directory
    location: str  # file (and line) inside it, or the package for vulns/licenses
    package: str = ""
    tool: str = ""

    def describe(self) -> str:
        where = f" in {self.location}" if self.location else ""
        return f"{self.scanner.value} {self.id} ({self.severity.value}){where}: {self.title}"


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[Finding, ...]
    scanners_run: tuple[ScanKind, ...]
    db_status: DbStatus
    targets: tuple[ScanTarget, ...] = ()
    errors: tuple[str, ...] = ()
    tool_version: str = ""
    notes: tuple[str, ...] = field(default=())
    #: files the tool wrote, kept as evidence (its raw JSON report, a SARIF copy)
    evidence: tuple[str, ...] = field(default=())

    def counts(self) -> dict[tuple[ScanKind, Severity], int]:
        return dict(Counter((f.scanner, f.severity) for f in self.findings))

    def merge(self, other: ScanReport) -> ScanReport:
        """Reports of several targets as one; the DB is available only if it was for both."""
        kinds = tuple(dict.fromkeys(self.scanners_run + other.scanners_run))
        both = DbStatus.AVAILABLE in (self.db_status, other.db_status) and self.db_status == \
            other.db_status
        return ScanReport(
            findings=self.findings + other.findings,
            scanners_run=kinds,
            db_status=DbStatus.AVAILABLE if both else DbStatus.UNAVAILABLE,
            targets=self.targets + other.targets,
            errors=self.errors + other.errors,
            tool_version=self.tool_version or other.tool_version,
            notes=self.notes + other.notes,
            evidence=self.evidence + other.evidence,
        )


class Scanner(Protocol):
    """One security scanner. ``scan`` never raises for a failed scan (see module doc)."""

    name: str

    def scan(self, target: ScanTarget) -> ScanReport: ...
