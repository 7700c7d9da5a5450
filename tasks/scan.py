"""Scan stage: the configured scanner on the image and on the repository, then the scan gate.

The artifact leads with the verdict and, when there was no vulnerability DB, with a warning that
vulnerabilities were not scanned; then counts per scanner and severity, and every reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from policies import scan as scan_policy
from policies.waivers import Verify
from suite.settings import Settings
from tasks import scanners, waivers
from tasks.scanners.base import DbStatus, ScanReport, ScanTarget, Severity, TargetKind

MAX_LISTED = 50


def scan(
    settings: Settings,
    *,
    image: str | None = None,
    repo: Path | None = None,
    scanner: str = "trivy",
) -> ScanReport:
    """One report over every given target (image and/or repository directory)."""
    plugin = scanners.get(scanner, settings)
    targets = ([ScanTarget(TargetKind.IMAGE, image)] if image else []) + (
        [ScanTarget(TargetKind.REPO, str(repo))] if repo else [])
    reports = [plugin.scan(t) for t in targets]
    if not reports:
        return ScanReport((), (), DbStatus.UNAVAILABLE)
    merged = reports[0]
    for other in reports[1:]:
        merged = merged.merge(other)
    return merged


def gate(
    report: ScanReport,
    policy_path: Path = scan_policy.DEFAULT_POLICY,
    today: datetime | None = None,
    *,
    verify: Verify | None = None,
    service: str | None = None,
) -> scan_policy.GateDecision:
    """The gate on ``report``. Waivers count only once ``verify`` (Vault, ``suite-waiver``) has
    checked their signatures; without it none does."""
    policy = scan_policy.load(policy_path)
    day = (today or datetime.now(UTC)).date()
    checks = (waivers.check_policy(policy, verify, day, str(policy_path))
              if verify is not None and policy.waivers else {})
    return scan_policy.evaluate(report, policy, day, checks, service)


def markdown(report: ScanReport, decision: scan_policy.GateDecision) -> str:
    verdict = "PASSED" if decision.allowed else "BLOCKED"
    lines = [f"# Scan gate: {verdict}", ""]
    for warning in decision.warnings:
        lines += [f"> **WARNING: {warning}**", ""]
    lines += [f"Targets: {', '.join(str(t) for t in report.targets) or 'none'}  ",
              f"Scanners run: {', '.join(k.value for k in report.scanners_run)}  ",
              f"Vulnerability DB: **{report.db_status.value}**  ",
              f"Tool: trivy {report.tool_version}  ",
              f"Evidence: {', '.join(f'`{e}`' for e in report.evidence) or 'none kept'}", "",
              "| scanner | " + " | ".join(s.value for s in reversed(Severity)) + " |",
              "|---|" + "---|" * len(Severity)]
    counts = report.counts()
    for kind in report.scanners_run:
        row = [str(counts.get((kind, sev), 0)) for sev in reversed(Severity)]
        lines.append(f"| {kind.value} | " + " | ".join(row) + " |")
    if decision.reasons:
        lines += ["", f"## Blocking reasons ({len(decision.reasons)})", ""]
        lines += [f"- {r}" for r in decision.reasons[:MAX_LISTED]]
        if len(decision.reasons) > MAX_LISTED:
            lines.append(f"- … and {len(decision.reasons) - MAX_LISTED} more")
    if decision.waivers_used:
        lines += ["", "## Waivers used", ""] + [f"- {w}" for w in decision.waivers_used]
    return "\n".join(lines)


@task(name="scan")
def scan_task(
    image: str | None = None,
    repo: str | None = None,
    scanner: str = "trivy",
    policy_path: str | None = None,
    settings: Settings | None = None,
    service: str | None = None,
) -> scan_policy.GateDecision:
    """Scan, gate, publish the artifact, audit; raise ``GateBlocked`` when the gate says so.
    ``service``: the service released, for waivers scoped to one service."""
    from suite import audit
    from suite import settings as settings_mod

    settings = settings or settings_mod.load()
    report = scan(settings, image=image, repo=Path(repo) if repo else None, scanner=scanner)
    decision = gate(report, Path(policy_path) if policy_path else scan_policy.DEFAULT_POLICY,
                    verify=waivers.settings_verifier(settings), service=service)
    create_markdown_artifact(key="scan-report", markdown=markdown(report, decision),
                             description=f"scan of {image or repo}")
    audit.append(settings, action="stage.scan", subject=image or repo or "",
                 inputs=summary(report, decision),
                 outcome="ok" if decision.allowed else "blocked")
    return scan_policy.enforce(decision)


def summary(report: ScanReport, decision: scan_policy.GateDecision) -> dict[str, object]:
    return {
        "targets": [str(t) for t in report.targets],
        "scanners_run": [k.value for k in report.scanners_run],
        "db_status": report.db_status.value,
        "findings": len(report.findings),
        "allowed": decision.allowed,
        "reasons": list(decision.reasons[:MAX_LISTED]),
        "waivers_used": list(decision.waivers_used),
        "waiver_signers": list(decision.waiver_signers),
        "warnings": list(decision.warnings),
        "evidence": list(report.evidence),
    }


def reasons_text(decision: scan_policy.GateDecision) -> Sequence[str]:
    return [*decision.warnings, *decision.reasons]
