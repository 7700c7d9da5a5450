"""The scan gate is pure: tables of reports against policies."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from policies import scan as gate
from policies.waivers import WaiverCheck, check_all
from suite.errors import ConfigError, GateBlocked
from tasks.scanners.base import DbStatus, Finding, ScanKind, ScanReport, ScanTarget, Severity
from tasks.scanners.base import TargetKind as TK

TODAY = date(2026, 11, 29)
TARGET = ScanTarget(TK.IMAGE, "reg/app:1")


def finding(kind: ScanKind, sev: Severity, id_: str = "X-1", loc: str = "app/f.py:3") -> Finding:
    return Finding(kind, id_, sev, "title", "reg/app:1", loc)


def report(*findings: Finding, db: DbStatus = DbStatus.AVAILABLE,
           errors: tuple[str, ...] = ()) -> ScanReport:
    return ScanReport(tuple(findings), tuple(ScanKind), db, (TARGET,), errors)


POLICY = gate.ScanPolicy(max_severity={ScanKind.SECRET: "NONE", ScanKind.MISCONFIG: "MEDIUM",
                                       ScanKind.LICENSE: "HIGH", ScanKind.VULN: "MEDIUM"})


@pytest.mark.parametrize(("found", "allowed"), [
    (finding(ScanKind.SECRET, Severity.LOW), False),
    (finding(ScanKind.MISCONFIG, Severity.MEDIUM), True),
    (finding(ScanKind.MISCONFIG, Severity.HIGH), False),
    (finding(ScanKind.LICENSE, Severity.HIGH), True),
    (finding(ScanKind.LICENSE, Severity.CRITICAL), False),
    (finding(ScanKind.VULN, Severity.CRITICAL), False),
    (finding(ScanKind.VULN, Severity.UNKNOWN), False),  # unknown_as HIGH
])
def test_gate_per_scanner_max_severity(found: Finding, allowed: bool) -> None:
    assert gate.evaluate(report(found), POLICY, TODAY).allowed is allowed


def test_gate_lists_every_reason_with_location_and_limit() -> None:
    found = (finding(ScanKind.SECRET, Severity.CRITICAL, "aws", "a.env:2"),
             finding(ScanKind.MISCONFIG, Severity.HIGH, "DS002", "Dockerfile"))
    decision = gate.evaluate(report(*found), POLICY, TODAY)
    assert len(decision.reasons) == 2
    assert "a.env:2" in decision.reasons[0] and "exceeds max NONE" in decision.reasons[0]
    assert "DS002" in decision.reasons[1] and "exceeds max MEDIUM" in decision.reasons[1]
    with pytest.raises(GateBlocked) as err:
        gate.enforce(decision)
    assert err.value.reasons == list(decision.reasons)


def test_unlisted_scanner_allows_nothing() -> None:
    policy = gate.ScanPolicy(max_severity={})
    assert not gate.evaluate(report(finding(ScanKind.LICENSE, Severity.LOW)), policy, TODAY).allowed


SIGNED_AT = "2026-11-20T09:00:00Z"


def _waiver(expires: date, location: str | None = None, service: str | None = None,
            signature: str = "transit:suite-waiver:vault:v1:good") -> gate.Waiver:
    return gate.Waiver(id="X-1", reason="false positive", approver="userpass:alice",
                       expires=expires, location=location, service=service,
                       signed_at=SIGNED_AT if signature else "", signature=signature)


def _waived(expires: date, location: str | None = None, service: str | None = None,
            signature: str = "transit:suite-waiver:vault:v1:good") -> gate.ScanPolicy:
    return POLICY.model_copy(update={"waivers": (_waiver(expires, location, service,
                                                         signature),)})


def _checks(policy: gate.ScanPolicy, today: date = TODAY) -> dict[gate.Waiver, WaiverCheck]:
    """Vault stand-in: a signature is good when it ends in ``:good``."""
    return check_all(policy.waivers, lambda items: [s.endswith(":good") for _, s in items],
                     today, policy.waiver_max_days)


def _evaluate(rep: ScanReport, policy: gate.ScanPolicy, service: str | None = None):
    return gate.evaluate(rep, policy, TODAY, _checks(policy), service)


def test_signed_waiver_applies_until_its_expiry_day_inclusive() -> None:
    rep = report(finding(ScanKind.SECRET, Severity.HIGH))
    decision = _evaluate(rep, _waived(TODAY))
    assert decision.allowed
    assert decision.waivers_used == (
        "X-1 (signed by userpass:alice on 2026-11-20, until 2026-11-29): false positive",)
    assert decision.waiver_signers == ("userpass:alice",)


def test_expired_waiver_blocks_and_says_so() -> None:
    decision = _evaluate(report(finding(ScanKind.SECRET, Severity.HIGH)),
                         _waived(date(2026, 11, 28)))
    assert not decision.allowed
    assert ("waiver X-1 by userpass:alice expired on 2026-11-28 and no longer applies"
            in decision.reasons[0])


def test_unsigned_waiver_blocks_and_says_how_to_sign_it() -> None:
    decision = _evaluate(report(finding(ScanKind.SECRET, Severity.HIGH)),
                         _waived(date(2027, 1, 1), signature=""))
    assert not decision.allowed
    assert "waiver X-1 is not signed" in decision.reasons[0]
    assert "suite waiver sign policies/scan.yaml" in decision.reasons[0]


def test_waiver_without_a_check_does_not_count() -> None:
    policy = _waived(date(2027, 1, 1))
    decision = gate.evaluate(report(finding(ScanKind.SECRET, Severity.HIGH)), policy, TODAY)
    assert not decision.allowed
    assert "waiver X-1 was not verified" in decision.reasons[0]


def test_a_tampered_waiver_blocks_even_when_no_finding_needs_it() -> None:
    policy = _waived(date(2027, 1, 1), signature="transit:suite-waiver:vault:v1:bad")
    decision = _evaluate(report(finding(ScanKind.LICENSE, Severity.LOW)), policy)
    assert not decision.allowed
    assert "does not match its signature" in decision.reasons[0]


def test_a_waiver_scoped_to_another_service_does_not_apply() -> None:
    policy = _waived(date(2027, 1, 1), service="hello")
    rep = report(finding(ScanKind.SECRET, Severity.HIGH))
    assert _evaluate(rep, policy, "hello").allowed
    other = _evaluate(rep, policy, "model-server")
    assert not other.allowed and "exceeds max NONE" in other.reasons[0]


def test_waiver_location_glob_narrows_it() -> None:
    policy = _waived(date(2026, 12, 31), location="tests/*")
    assert not _evaluate(report(finding(ScanKind.SECRET, Severity.HIGH)), policy).allowed
    inside = finding(ScanKind.SECRET, Severity.HIGH, loc="tests/x.py:1")
    assert _evaluate(report(inside), policy).allowed


def test_missing_vuln_db_warns_loudly_by_default() -> None:
    decision = gate.evaluate(report(db=DbStatus.UNAVAILABLE), POLICY, TODAY)
    assert decision.allowed
    assert decision.warnings == (gate.DB_WARNING,)
    assert "NOT scanned" in decision.warnings[0]


def test_missing_vuln_db_blocks_when_configured() -> None:
    policy = POLICY.model_copy(update={"vuln_db_unavailable": "fail"})
    decision = gate.evaluate(report(db=DbStatus.UNAVAILABLE), policy, TODAY)
    assert not decision.allowed
    assert "vulnerability DB unavailable" in decision.reasons[0]


def test_scan_errors_and_empty_reports_block() -> None:
    assert not gate.evaluate(report(errors=("trivy exited 1",)), POLICY, TODAY).allowed
    empty = ScanReport((), (), DbStatus.AVAILABLE)
    assert "nothing was scanned" in gate.evaluate(empty, POLICY, TODAY).reasons[0]


def test_shipped_policy_loads() -> None:
    policy = gate.load()
    assert policy.max_severity[ScanKind.SECRET] == "NONE"
    assert policy.vuln_db_unavailable == "warn"


@pytest.mark.parametrize("text", [
    "max_severity: {secret: SEVERE}\n",
    "max_severitee: {}\n",
    "waivers: [{id: X, reason: r, approver: a}]\n",
    "vuln_db_unavailable: ignore\n",
    "max_severity: [\n",
])
def test_invalid_policy_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "scan.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        gate.load(path)
