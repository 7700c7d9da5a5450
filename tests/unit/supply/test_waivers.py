"""Signed scan waivers: what is signed, when a waiver counts, and the policy file rewrite."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from policies import scan as scan_policy
from policies.waivers import WaiverStatus, canonical, check_all
from suite.errors import ConfigError, VaultError
from tasks import waivers

TODAY = date(2026, 12, 2)
BASE = scan_policy.Waiver(id="CVE-2026-1", reason="not reachable", expires=date(2026, 12, 31),
                          location="usr/lib/*", service="hello", approver="userpass:alice",
                          signed_at="2026-12-01T10:00:00Z",
                          signature="transit:suite-waiver:vault:v1:good")


def good_only(items: Any) -> list[bool]:
    return [sig.endswith(":good") for _, sig in items]


@pytest.mark.parametrize(("change", "status", "words"), [
    ({}, WaiverStatus.VALID, ""),
    ({"signature": ""}, WaiverStatus.UNSIGNED, "suite waiver sign"),
    ({"signed_at": ""}, WaiverStatus.UNSIGNED, "is not signed"),
    ({"signature": "transit:suite-audit:vault:v1:good"}, WaiverStatus.WRONG_KEY,
     "key 'suite-audit', not the waiver key 'suite-waiver'"),
    ({"signature": "vault:v1:good"}, WaiverStatus.WRONG_KEY, "key 'suite-sign'"),
    ({"signature": "transit:suite-waiver:vault:v1:bad"}, WaiverStatus.TAMPERED,
     "changed after signing"),
    ({"expires": date(2027, 6, 1)}, WaiverStatus.TOO_LONG, "more than the policy's "
     "waiver_max_days (90)"),
    ({"expires": date(2026, 12, 1)}, WaiverStatus.EXPIRED, "expired on 2026-12-01"),
])
def test_a_waiver_counts_only_signed_by_the_waiver_key_and_in_date(
        change: dict[str, Any], status: WaiverStatus, words: str) -> None:
    waiver = BASE.model_copy(update=change)
    check = check_all([waiver], good_only, TODAY, 90)[waiver]
    assert check.status is status
    assert words in check.reason
    assert check.valid is (status is WaiverStatus.VALID)
    if not check.valid:
        assert "CVE-2026-1" in check.reason  # the error names the waiver


@pytest.mark.parametrize("field", ["id", "reason", "location", "service", "approver",
                                   "signed_at"])
def test_every_field_that_decides_what_passes_is_signed(field: str) -> None:
    assert canonical(BASE.model_copy(update={field: "other"})) != canonical(BASE)
    assert canonical(BASE.model_copy(update={"expires": date(2026, 12, 30)})) != canonical(BASE)


def test_the_signature_itself_is_not_part_of_the_content() -> None:
    assert canonical(BASE.model_copy(update={"signature": "x"})) == canonical(BASE)


def test_vault_is_asked_once_and_only_for_waiver_key_signatures() -> None:
    calls: list[int] = []

    def verify(items: Any) -> list[bool]:
        calls.append(len(items))
        return [True] * len(items)

    many = [BASE.model_copy(update={"id": f"X-{i}"}) for i in range(3)]
    unsigned = BASE.model_copy(update={"id": "U", "signature": ""})
    checks = check_all([*many, unsigned], verify, TODAY, 90)
    assert calls == [3]
    assert [c.status for c in checks.values()].count(WaiverStatus.VALID) == 3


class FakeVault:
    """The two transit calls and lookup-self that signing makes."""

    def __init__(self, meta: dict[str, str] | None, display: str = "token",
                 forbidden: bool = False) -> None:
        self.signed: list[tuple[str, str]] = []
        outer = self

        class Token:
            def lookup_self(self) -> dict[str, Any]:
                return {"data": {"meta": meta, "display_name": display}}

        class Transit:
            def sign_data(self, name: str, hash_input: str) -> dict[str, Any]:
                if forbidden:
                    import hvac.exceptions
                    raise hvac.exceptions.Forbidden("permission denied")
                outer.signed.append((name, hash_input))
                return {"data": {"signature": "vault:v1:sig"}}

        self.auth = type("Auth", (), {"token": Token()})()
        self.secrets = type("Secrets", (), {"transit": Transit()})()


NOW = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize(("meta", "display", "who"), [
    ({"username": "alice"}, "userpass-alice", "userpass:alice"),
    (None, "token-suite-admin", "token:suite-admin"),
])
def test_sign_names_the_token_holder_not_a_typed_name(meta: dict[str, str] | None,
                                                      display: str, who: str) -> None:
    vault = FakeVault(meta, display)
    typed = BASE.model_copy(update={"approver": "mallory", "signature": "", "signed_at": ""})
    signed = waivers.sign(typed, vault, NOW)  # type: ignore[arg-type]
    assert signed.approver == who and signed.signed_at == "2026-12-02T18:30:00Z"
    assert signed.signature == "transit:suite-waiver:vault:v1:sig"
    assert vault.signed[0][0] == "suite-waiver"
    import base64
    assert base64.b64decode(vault.signed[0][1]) == canonical(signed)


def test_sign_without_the_approver_role_is_a_clear_error() -> None:
    with pytest.raises(VaultError, match="only the approver role may sign waivers"):
        waivers.sign(BASE, FakeVault(None, forbidden=True), NOW)  # type: ignore[arg-type]


POLICY_TEXT = """\
# the scan gate
max_severity:
  secret: NONE   # never
# waivers, signed by an approver
waivers:
  - id: CVE-2026-1
    reason: not reachable
    expires: 2026-12-31
    approver: sec-team   # old free text
  - {id: DS002, reason: build only, expires: 2026-12-20, location: Dockerfile}
# what to do without a DB
vuln_db_unavailable: warn
"""


def test_signing_a_file_rewrites_only_its_waivers_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "scan.yaml"
    path.write_text(POLICY_TEXT)
    policy = scan_policy.load(path)
    checks = check_all(policy.waivers, good_only, TODAY, policy.waiver_max_days, str(path))
    assert all(c.status is WaiverStatus.UNSIGNED for c in checks.values())
    chosen = waivers.to_sign(checks, [], TODAY, policy.waiver_max_days)
    assert [w.id for w in chosen] == ["CVE-2026-1", "DS002"]
    done = waivers.sign_file(path, FakeVault({"username": "bob"}), chosen,  # type: ignore[arg-type]
                             NOW)
    assert [s.after.approver for s in done] == ["userpass:bob"] * 2
    text = path.read_text()
    assert text.startswith("# the scan gate\nmax_severity:\n  secret: NONE   # never\n")
    assert "# waivers, signed by an approver\nwaivers:\n" in text
    assert text.endswith("# what to do without a DB\nvuln_db_unavailable: warn\n")
    again = scan_policy.load(path)
    assert again.waivers[1].location == "Dockerfile"
    assert all(w.signature == "transit:suite-waiver:vault:v1:sig" for w in again.waivers)
    assert again.vuln_db_unavailable == "warn"


def test_to_sign_refuses_expired_over_long_and_unknown_waivers() -> None:
    def checks(w: scan_policy.Waiver) -> dict[scan_policy.Waiver, Any]:
        return check_all([w], good_only, TODAY, 90)

    old = BASE.model_copy(update={"expires": date(2026, 11, 1), "signature": ""})
    with pytest.raises(ConfigError, match="expired on 2026-11-01: set a new `expires`"):
        waivers.to_sign(checks(old), [], TODAY, 90)
    far = BASE.model_copy(update={"expires": date(2027, 12, 1), "signature": ""})
    with pytest.raises(ConfigError, match="waiver_max_days is 90"):
        waivers.to_sign(checks(far), [], TODAY, 90)
    with pytest.raises(ConfigError, match="no waiver with id 'NOPE'"):
        waivers.to_sign(checks(BASE), ["NOPE"], TODAY, 90)
    assert waivers.to_sign(checks(BASE), [], TODAY, 90) == []  # valid: nothing to sign
    assert waivers.to_sign(checks(BASE), ["CVE-2026-1"], TODAY, 90) == [BASE]  # named: again


def test_a_file_without_a_waivers_block_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "scan.yaml"
    path.write_text("unknown_as: HIGH")
    waivers.write_waivers(path, [BASE])
    assert scan_policy.load(path).waivers == (BASE,)
