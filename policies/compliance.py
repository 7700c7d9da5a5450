"""The release pipeline's compliance map: which audit actions and which policies evidence each
control. ``suite compliance report`` reads it; the CrossGuard pack keeps its own map of
infrastructure concerns (policies/crossguard/compliance.py), whose Control type this reuses.

A control is evidenced by the audit records of its actions in the period (each release with who
started it, which gates ran and what they found, approvals, outcome) and, for the logging
controls, by the verification of the whole hash chain and its signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.crossguard.compliance import GDPR, HIPAA, ISO, SOC2, Control

POLICIES = Path(__file__).resolve().parent

@dataclass(frozen=True)
class Mapping:
    control: Control
    evidence: str  # what an auditor is shown, in a sentence
    actions: tuple[str, ...]  # audit actions that evidence it ("*": every record, "x.*": prefix)
    policies: tuple[str, ...] = ()  # files under policies/ that define the gates
    chain: bool = False  # the audit chain's verification is itself evidence


CHANGE = ("release.start", "stage.build", "stage.scan", "stage.test", "canary.analysis",
          "canary.approval", "release.promote", "release.abort", "model.promote",
          "release.promoted", "release.rolled_back", "release.failed", "release.rollback",
          "release.reconciled", "deploy.promote", "deploy.heal", "model.undo",
          "waiver.sign", "pulumi.*")
GATES = ("scan.yaml", "release.yaml", "canary.yaml", "model.yaml", "analysis/http.yaml",
         "analysis/model-server.yaml", "crossguard/PulumiPolicy.yaml")

MAP: tuple[Mapping, ...] = (
    Mapping(Control(SOC2, "CC8.1", "Changes are authorised, tested, approved and implemented"),
            "each release: started, built with signed provenance, scanned and gated, tested in "
            "its image, judged by canary analysis, approved when marginal, promoted or rolled "
            "back", CHANGE, GATES),
    Mapping(Control(ISO, "A.8.32", "Change management"),
            "the same release evidence: every change goes through the same gated pipeline",
            CHANGE, GATES),
    Mapping(Control(HIPAA, "164.312(b)", "Audit controls: record and examine activity"),
            "every action is a signed, hash-chained record; the chain verifies end to end",
            ("*",), chain=True),
    Mapping(Control(ISO, "A.8.15", "Logging"),
            "append-only, signed, hash-chained records with a signed HEAD (cut-backs detected)",
            ("*",), chain=True),
    Mapping(Control(GDPR, "Art. 32", "Security of processing: integrity, regular testing of "
                                     "the measures' effectiveness"),
            "scans and tests of every release, canary analysis before full traffic, secrets "
            "only in Vault (writes audited), verifiable audit trail",
            ("stage.scan", "stage.test", "canary.analysis", "secret.write"),
            ("scan.yaml", "canary.yaml"), chain=True),
)


def existing_policies(mapping: Mapping) -> list[str]:
    return [p for p in mapping.policies if (POLICIES / p).exists()]


def matches(mapping: Mapping, action: str) -> bool:
    return any(a == "*" or a == action or (a.endswith(".*") and action.startswith(a[:-1]))
               for a in mapping.actions)
