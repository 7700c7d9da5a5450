"""Compliance mapping: which controls each CrossGuard concern evidences.

A violation names its controls so that an auditor reading a blocked ``pulumi up`` (or the
compliance report) sees which obligation was at stake, not only which property was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Framework(StrEnum):
    SOC2 = "SOC 2"
    HIPAA = "HIPAA"
    GDPR = "GDPR"
    ISO27001 = "ISO 27001"


@dataclass(frozen=True)
class Control:
    framework: Framework
    id: str
    title: str

    def __str__(self) -> str:
        return f"{self.framework} {self.id}"


def _c(framework: Framework, control_id: str, title: str) -> Control:
    return Control(framework, control_id, title)


SOC2, HIPAA, GDPR, ISO = Framework.SOC2, Framework.HIPAA, Framework.GDPR, Framework.ISO27001

ENCRYPTION_AT_REST: tuple[Control, ...] = (
    _c(SOC2, "CC6.1", "Logical access security; encryption of data at rest"),
    _c(HIPAA, "164.312(a)(2)(iv)", "Encryption and decryption of ePHI"),
    _c(GDPR, "Art. 32(1)(a)", "Pseudonymisation and encryption of personal data"),
    _c(ISO, "A.8.24", "Use of cryptography"),
)

PUBLIC_ACCESS: tuple[Control, ...] = (
    _c(SOC2, "CC6.1", "Logical access restricted to authorised users"),
    _c(SOC2, "CC6.6", "Protection against threats from outside system boundaries"),
    _c(HIPAA, "164.312(a)(1)", "Access control"),
    _c(GDPR, "Art. 25", "Data protection by design and by default"),
    _c(ISO, "A.8.3", "Information access restriction"),
)

VERSIONING: tuple[Control, ...] = (
    _c(SOC2, "A1.2", "Recovery infrastructure and backups"),
    _c(HIPAA, "164.308(a)(7)(ii)(A)", "Data backup plan"),
    _c(GDPR, "Art. 32(1)(c)", "Restore availability and access to personal data"),
    _c(ISO, "A.8.13", "Information backup"),
)

ASSET_INVENTORY: tuple[Control, ...] = (
    _c(SOC2, "CC6.1", "Inventory of information assets"),
    _c(HIPAA, "164.308(a)(1)(ii)(A)", "Risk analysis (know where ePHI lives)"),
    _c(GDPR, "Art. 30", "Records of processing activities"),
    _c(ISO, "A.5.9", "Inventory of information and other associated assets"),
    _c(ISO, "A.5.12", "Classification of information"),
)

LEAST_PRIVILEGE_WORKLOADS: tuple[Control, ...] = (
    _c(SOC2, "CC6.8", "Prevent or detect unauthorised or malicious software"),
    _c(HIPAA, "164.312(a)(1)", "Access control"),
    _c(GDPR, "Art. 32(1)(b)", "Confidentiality and integrity of processing systems"),
    _c(ISO, "A.8.2", "Privileged access rights"),
    _c(ISO, "A.8.9", "Configuration management"),
)

CHANGE_INTEGRITY: tuple[Control, ...] = (
    _c(SOC2, "CC8.1", "Changes are authorised, tested and approved"),
    _c(HIPAA, "164.312(c)(1)", "Integrity"),
    _c(GDPR, "Art. 32(1)(b)", "Integrity of processing systems"),
    _c(ISO, "A.8.32", "Change management"),
)

CAPACITY: tuple[Control, ...] = (
    _c(SOC2, "A1.1", "Capacity is managed to meet objectives"),
    _c(HIPAA, "164.308(a)(7)(i)", "Contingency plan (availability)"),
    _c(GDPR, "Art. 32(1)(b)", "Availability and resilience of processing systems"),
    _c(ISO, "A.8.6", "Capacity management"),
)


def format_controls(controls: Iterable[Control]) -> str:
    return ", ".join(str(c) for c in controls)


def frameworks(controls: Iterable[Control]) -> list[str]:
    return sorted({str(c.framework) for c in controls})
