"""Evidence for ``suite compliance report``: the releases of a period rebuilt from the audit
trail, mapped to the controls of policies/compliance.py, rendered as markdown, HTML or JSON.

The trail stores each record's inputs only as a digest, so the evidence is what records say in
clear: actor, action, subject, outcome, time. A release is the records whose subject names its
id (``release.*``, ``canary.*``); its build, scan and test are the ``stage.*`` records of the
same service between its start and its end (one release per service runs at a time, so no other
release of that service can own them). ``release.start`` names the service and who started the
release in its subject (:func:`start_subject`); for records written before it did, the service
is read off the test's subject (``service@sha``, the commit the release id begins with) or the
image's repository, and the starter is the record's actor.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from policies import compliance as cmap
from suite.audit.record import AuditRecord

END_ACTIONS = {"release.promoted": "promoted", "release.rolled_back": "rolled_back",
               "release.failed": "failed", "release.reconciled": "rolled_back"}
_IMAGE_SERVICE = re.compile(r"/suite/([a-z][a-z0-9-]*)[@:]")
_START = re.compile(r"^(\S+) (\S+) started by (.+)$")
#: how much of a starter's description the subject keeps (a webhook's names pusher and branch)
STARTER_CHARS = 200


def start_subject(release: str, service: str, started_by: str) -> str:
    """The subject of a ``release.start`` record: ``<release> <service> started by <who>``.

    The record's actor is the identity that signed it (the release flow's AppRole); who asked
    for the release (a person on the CLI, a git push, the demo) is the flow's ``triggered_by``,
    which the trail would otherwise keep only inside the inputs' digest. The subject is part of
    the hashed and signed body, so it is as tamper-evident as the actor."""
    who = " ".join(str(started_by).split())[:STARTER_CHARS] or "unknown"
    return f"{release} {service} started by {who}"


def parse_start(subject: str) -> tuple[str, str, str]:
    """(release, service, started by) of a ``release.start`` subject; service and starter are
    empty for records written before the subject carried them."""
    found = _START.match(subject)
    if found is None:
        return subject.split(" ", 1)[0], "", ""
    return found.group(1), found.group(2), found.group(3)


@dataclass
class ReleaseEvidence:
    release: str
    service: str = ""
    started: str = ""
    ended: str = ""
    started_by: str = ""  # who asked for it: a person, a git push, a schedule
    recorded_by: str = ""  # the identity that signed its records (the release flow)
    outcome: str = "unfinished"
    gates: list[dict[str, Any]] = field(default_factory=list)  # build, scan, test, analyses
    approvals: list[dict[str, Any]] = field(default_factory=list)  # approvals, promote/abort
    records: list[int] = field(default_factory=list)  # seq of every record used


@dataclass(frozen=True)
class ControlEvidence:
    control: str
    title: str
    evidence: str
    policies: tuple[str, ...]
    records: int  # records of the period that evidence it
    releases: tuple[str, ...]
    chain: bool


@dataclass(frozen=True)
class ComplianceReport:
    since: str
    until: str
    records: int
    chain_ok: bool | None  # None: could not be verified (Vault down)
    chain: str
    controls: tuple[ControlEvidence, ...]
    releases: tuple[ReleaseEvidence, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(rec: AuditRecord) -> dict[str, Any]:
    name = rec.action.removeprefix("stage.").removeprefix("canary.")
    if rec.action == "canary.analysis":
        name = f"analysis {rec.subject.split(' ', 1)[-1]}"
    return {"gate": name, "outcome": rec.outcome, "subject": rec.subject, "time": rec.time,
            "seq": rec.seq}


def _service_of(rec: AuditRecord) -> str:
    if rec.action == "stage.test" and "@" in rec.subject:
        return rec.subject.split("@", 1)[0]
    found = _IMAGE_SERVICE.search(rec.subject)
    return found.group(1) if found else ""


def releases(records: list[AuditRecord]) -> list[ReleaseEvidence]:
    """Rebuild each release of ``records`` (in trail order) from what the records say."""
    by_id: dict[str, ReleaseEvidence] = {}
    for rec in records:
        rid = rec.subject.split(" ", 1)[0]
        if rec.action == "release.start":
            rid, service, who = parse_start(rec.subject)
            by_id[rid] = ReleaseEvidence(rid, service=service, started=rec.time,
                                         started_by=who or rec.actor, recorded_by=rec.actor,
                                         records=[rec.seq])
        elif rid in by_id and rec.action.startswith(("release.", "canary.", "model.")):
            ev = by_id[rid]
            ev.records.append(rec.seq)
            if rec.action in END_ACTIONS:
                ev.outcome, ev.ended = END_ACTIONS[rec.action], rec.time
            elif rec.action == "canary.analysis":
                ev.gates.append(_gate(rec))
            elif rec.action in ("canary.approval", "release.promote", "release.abort"):
                ev.approvals.append({"action": rec.action, "by": rec.actor,
                                     "decision": rec.outcome, "time": rec.time})
    _attach_stages(records, list(by_id.values()))
    return list(by_id.values())


def _attach_stages(records: list[AuditRecord], found: list[ReleaseEvidence]) -> None:
    """stage.test names the service and commit: it ties the service to its release; build and
    scan of that service's image between the release's start and end are its gates."""
    for rec in records:
        if rec.action == "stage.test" and "@" in rec.subject:
            service, sha = rec.subject.split("@", 1)
            for ev in found:
                if not ev.service and ev.release.startswith(sha[:8]) and ev.started <= rec.time \
                        and (not ev.ended or rec.time <= ev.ended):
                    ev.service = service
                    break
    for ev in found:
        if not ev.service:  # ended before its test: the one service no other release explains
            ev.service = _only_unexplained(records, ev, found)
    for rec in records:
        if rec.action not in ("stage.build", "stage.scan", "stage.test"):
            continue
        service = _service_of(rec)
        for ev in found:
            if ev.service == service and ev.started <= rec.time and \
                    (not ev.ended or rec.time <= ev.ended):
                ev.gates.append(_gate(rec))
                ev.records.append(rec.seq)
                break
    for ev in found:
        ev.gates.sort(key=lambda g: g["seq"])
        ev.records.sort()


def _when(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _within(ev: ReleaseEvidence, time: str) -> bool:
    return ev.started <= time and (not ev.ended or time <= ev.ended)


def _only_unexplained(records: list[AuditRecord], ev: ReleaseEvidence,
                      found: list[ReleaseEvidence]) -> str:
    known = [o for o in found if o.service and o is not ev]
    candidates = {_service_of(r) for r in records
                  if r.action in ("stage.build", "stage.scan") and _within(ev, r.time)
                  and not any(o.service == _service_of(r) and _within(o, r.time) for o in known)}
    candidates.discard("")
    return candidates.pop() if len(candidates) == 1 else ""


def build(records: list[AuditRecord], since: datetime | None, until: datetime | None,
          chain_ok: bool | None, chain: str) -> ComplianceReport:
    """``since``/``until``: the period (naive times are UTC); ``chain_ok``/``chain``: the
    verification of the whole trail (None when it could not run)."""
    period = [r for r in records if (since is None or _when(r.time) >= _when(since.isoformat()))
              and (until is None or _when(r.time) <= _when(until.isoformat()))]
    found = releases(period)
    controls = []
    for m in cmap.MAP:
        used = [r for r in period if cmap.matches(m, r.action)]
        rels = tuple(ev.release for ev in found if m.actions != ("*",) and any(
            cmap.matches(m, r.action) for r in period if r.seq in ev.records))
        controls.append(ControlEvidence(str(m.control), m.control.title, m.evidence,
                                        tuple(cmap.existing_policies(m)), len(used), rels,
                                        m.chain))
    return ComplianceReport(since.isoformat() if since else "",
                            until.isoformat() if until else "", len(period), chain_ok, chain,
                            tuple(controls), tuple(found))


def _gates_text(ev: ReleaseEvidence) -> str:
    return ", ".join(f"{g['gate']} {g['outcome']}" for g in ev.gates) or "none recorded"


def _approvals_text(ev: ReleaseEvidence) -> str:
    return ", ".join(f"{a['action'].split('.')[-1]} {a['decision']} by {a['by']}"
                     for a in ev.approvals) or "—"


def _chain_text(report: ComplianceReport) -> str:
    state = {True: "VERIFIED", False: "FAILED", None: "NOT VERIFIED"}[report.chain_ok]
    return f"{state}: {report.chain}"


def markdown(report: ComplianceReport) -> str:
    lines = [f"# Compliance report {report.since or 'from the start'} to "
             f"{report.until or 'now'}", "",
             f"{report.records} audit records, {len(report.releases)} releases. "
             f"Provenance is verified by the deploy stage before any container starts; "
             f"`suite verify IMAGE` checks it again for any image below.", "", "## Controls", ""]
    for c in report.controls:
        lines += [f"### {c.control} — {c.title}", "", f"Evidence: {c.evidence}.", "",
                  f"- audit records in the period: {c.records}"]
        if c.policies:
            lines.append("- gates defined in: " + ", ".join(f"`policies/{p}`"
                                                              for p in c.policies))
        if c.releases:
            lines.append(f"- releases: {', '.join(c.releases)}")
        if c.chain:
            lines.append(f"- audit chain: {_chain_text(report)}")
        lines.append("")
    lines += ["## Releases", "",
              "| release | service | started | started by | gates | approvals | outcome | ended |",
              "|---|---|---|---|---|---|---|---|"]
    for ev in report.releases:
        lines.append(f"| {ev.release} | {ev.service or '?'} | {ev.started[:19]} | "
                     f"{ev.started_by.replace('|', '/')} | {_gates_text(ev)} | "
                     f"{_approvals_text(ev)} | "
                     f"**{ev.outcome}** | {ev.ended[:19] or '—'} |")
    lines += ["", "## Audit chain", "", _chain_text(report), ""]
    return "\n".join(lines)


def to_html(report: ComplianceReport) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Compliance report"
             "</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
             "</style></head><body>",
             f"<h1>Compliance report {e(report.since or 'from the start')} to "
             f"{e(report.until or 'now')}</h1>",
             f"<p>{report.records} audit records, {len(report.releases)} releases.</p>",
             "<h2>Controls</h2>"]
    for c in report.controls:
        items = [f"audit records in the period: {c.records}"]
        if c.policies:
            items.append("gates defined in: " + ", ".join(f"policies/{p}" for p in c.policies))
        if c.releases:
            items.append("releases: " + ", ".join(c.releases))
        if c.chain:
            items.append("audit chain: " + _chain_text(report))
        parts += [f"<h3>{e(c.control)} — {e(c.title)}</h3><p>Evidence: {e(c.evidence)}.</p>",
                  "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"]
    parts.append("<h2>Releases</h2><table><tr><th>release</th><th>service</th><th>started</th>"
                 "<th>started by</th><th>gates</th><th>approvals</th><th>outcome</th>"
                 "<th>ended</th></tr>")
    for ev in report.releases:
        cells = [ev.release, ev.service or "?", ev.started[:19], ev.started_by,
                 _gates_text(ev), _approvals_text(ev), ev.outcome, ev.ended[:19] or "—"]
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts += ["</table>", f"<h2>Audit chain</h2><p>{e(_chain_text(report))}</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"
