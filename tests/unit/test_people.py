"""suite.people's pure parts: roles from policies, the claims of an approval token, the login
cache (0600, expiry, one Vault)."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from suite import people
from suite.errors import ConfigError
from suite.people import Role
from suite.settings import Settings, load
from suite.vault_policy import PEOPLE_ROLES, policies

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GOOD = {"aud": "client-1", "suite_role": "approver", "username": "carol",
        "exp": NOW.timestamp() + 300}


@pytest.mark.parametrize(("role", "expected"), [(r, Role(r)) for r in PEOPLE_ROLES])
def test_each_roles_policies_read_back_as_that_role(role: str, expected: Role) -> None:
    assert people.role_of(PEOPLE_ROLES[role] + ("default",)) is expected


def test_a_token_without_people_policies_has_no_role() -> None:
    assert people.role_of(("default", "suite-worker")) is None


def test_the_operators_admin_token_is_the_admin_role() -> None:
    assert people.role_of(("suite-admin",)) is Role.ADMIN


def test_every_people_policy_is_written_by_the_bootstrap() -> None:
    written = policies()
    assert {p for ps in PEOPLE_ROLES.values() for p in ps} <= set(written)


def test_only_releasers_and_up_read_prefects_credential() -> None:
    written = policies()
    path = 'path "secret/data/suite/platform/prefect"'
    assert path not in written["suite-viewer"]
    assert path in written["suite-releaser"] and path in written["suite-approver"]


def test_only_the_approver_policy_issues_approval_tokens() -> None:
    issuing = [name for name, text in policies().items()
               if "identity/oidc/token/suite-approver" in text]
    assert issuing == ["suite-approver"]
    assert "identity/oidc/introspect" in policies()["suite-worker"]


@pytest.mark.parametrize(("change", "why"), [
    ({"aud": "other"}, "another audience"),
    ({"suite_role": "releaser"}, "not approver"),
    ({"exp": NOW.timestamp() - 1}, "expired"),
    ({"exp": "soon"}, "expired"),
    ({"username": ""}, "names no user"),
    ({"username": "Bob Smith"}, "names no user"),
])
def test_claims_that_do_not_make_an_approval_are_refused_with_the_reason(
        change: dict[str, object], why: str) -> None:
    checked = people.check_claims({**GOOD, **change}, "client-1", NOW)
    assert not checked.ok and why in checked.reason


def test_the_approver_is_the_identity_the_claims_name() -> None:
    checked = people.check_claims(GOOD, "client-1", NOW)
    assert checked.ok and checked.approver == "userpass:carol"


def jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJFZERTQSJ9.{body}.c2ln"


def test_jwt_claims_reads_the_payload_and_refuses_what_is_not_a_jwt() -> None:
    assert people.jwt_claims(jwt(GOOD))["username"] == "carol"
    with pytest.raises(ValueError, match="not a JWT"):
        people.jwt_claims("alice")


def test_no_token_is_refused_without_asking_vault() -> None:
    checked = people.verify_approval(None, "")
    assert not checked.ok and "no approval token" in checked.reason


@pytest.mark.parametrize("name", ["", "Alice", "a b", "a/../b", "x" * 65, "1abc"])
def test_bad_user_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="user name"):
        people.check_name(name)


def test_an_unknown_role_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="viewer, releaser, approver, admin"):
        people.parse_role("root")


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", ports={"vault": 18200},
                    token_file=tmp_path / "cfg" / "suite" / "token")


def session(expires: datetime, addr: str = "http://127.0.0.1:18200") -> people.Session:
    return people.Session("carol", Role.APPROVER, expires, addr, "hvs.secret")


def test_the_login_cache_is_0600_and_reads_back(tmp_path: Path) -> None:
    s = settings(tmp_path)
    path = people.save_session(s, session(NOW + timedelta(hours=8)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert people.load_session(s, now=NOW) == session(NOW + timedelta(hours=8))
    assert "hvs.secret" not in repr(people.load_session(s, now=NOW))


def test_an_expired_login_says_to_log_in_again(tmp_path: Path) -> None:
    s = settings(tmp_path)
    people.save_session(s, session(NOW - timedelta(seconds=1)))
    with pytest.raises(ConfigError, match=r"expired .* run `suite login`"):
        people.load_session(s, now=NOW)


def test_a_login_for_another_vault_is_not_used(tmp_path: Path) -> None:
    s = settings(tmp_path)
    people.save_session(s, session(NOW + timedelta(hours=1), "http://127.0.0.1:9999"))
    with pytest.raises(ConfigError, match=r"is for Vault http://127\.0\.0\.1:9999"):
        people.load_session(s, now=NOW)


def test_a_garbled_cache_says_to_log_in_again(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.token_file is not None
    s.token_file.parent.mkdir(parents=True)
    s.token_file.write_text("{not json")
    with pytest.raises(ConfigError, match="run `suite login` again"):
        people.load_session(s, now=NOW)


def test_no_cache_is_no_login(tmp_path: Path) -> None:
    assert people.load_session(settings(tmp_path), now=NOW) is None


def test_the_cache_lives_in_the_users_config_unless_told(tmp_path: Path) -> None:
    env = {"SUITE_HOME": str(tmp_path), "HOME": "/home/ada"}
    assert load(env).token_file == Path("/home/ada/.config/suite/token")
    assert load({**env, "XDG_CONFIG_HOME": "/cfg"}).token_file == Path("/cfg/suite/token")
    assert load({**env, "SUITE_TOKEN_FILE": "/t/tok"}).token_file == Path("/t/tok")


class _KV:
    """The part of hvac's KV v2 API that claim_approval uses; ``fail`` is raised on a write."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.writes: list[dict[str, object]] = []

    def create_or_update_secret(self, **kwargs: object) -> dict[str, object]:
        self.writes.append(kwargs)
        if self.fail is not None:
            raise self.fail
        return {"data": {"version": 1}}


def _vault(kv: _KV) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(secrets=SimpleNamespace(kv=SimpleNamespace(v2=kv)))


OK = people.Checked("userpass:carol", "approver userpass:carol")


def test_a_claim_writes_the_tokens_hash_with_check_and_set_zero() -> None:
    import hashlib

    kv = _KV()
    assert people.claim_approval(_vault(kv), "a.b.c", OK, now=NOW) == OK  # type: ignore[arg-type]
    (write,) = kv.writes
    assert write["cas"] == 0 and write["mount_point"] == "secret"
    assert write["path"] == f"suite/approvals/used/{hashlib.sha256(b'a.b.c').hexdigest()}"
    assert "a.b.c" not in json.dumps(write)


@pytest.mark.parametrize("exc", ["InvalidRequest", "Forbidden"])
def test_a_second_claim_is_refused_as_already_used(exc: str) -> None:
    import hvac.exceptions

    kv = _KV(getattr(hvac.exceptions, exc)("check-and-set parameter did not match"))
    checked = people.claim_approval(_vault(kv), "a.b.c", OK)  # type: ignore[arg-type]
    assert checked.approver is None and "already used" in checked.reason
    assert "userpass:carol" in checked.reason


def test_a_claim_vault_cannot_record_is_refused() -> None:
    import hvac.exceptions

    kv = _KV(hvac.exceptions.InternalServerError("boom"))
    checked = people.claim_approval(_vault(kv), "a.b.c", OK)  # type: ignore[arg-type]
    assert checked.approver is None and "could not record" in checked.reason


def test_a_refused_token_is_not_claimed() -> None:
    kv = _KV()
    refused = people.Checked(None, "forged")
    assert people.claim_approval(_vault(kv), "a.b.c", refused) is refused  # type: ignore[arg-type]
    assert kv.writes == []


def test_approval_token_returns_once_its_issue_second_has_passed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two identity tokens of one second are the same token: the next one must be later."""
    from types import SimpleNamespace

    claims = base64.urlsafe_b64encode(json.dumps({"iat": 100}).encode()).decode().rstrip("=")
    jwt = f"h.{claims}.s"
    identity = SimpleNamespace(generate_signed_id_token=lambda name: {"data": {"token": jwt}})
    client = SimpleNamespace(secrets=SimpleNamespace(identity=identity))
    monkeypatch.setattr(people, "_session_client", lambda settings: (client, None))
    now = [100.25]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    assert people.approval_token(load(), clock=lambda: now[0], sleep=sleep) == jwt
    assert now[0] >= 101 and slept and max(slept) <= 0.1
