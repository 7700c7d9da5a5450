"""People and roles on the session platform's real OpenBao (issue 13 items 2, 4, 11): a viewer
cannot start a release, a releaser cannot approve or promote, an approver's identity token is
accepted and the recorded approver is the token's identity, a forged or expired token is refused,
TOTP login MFA works, and a logged-in person is the actor of what they do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import stat
import struct
import time
import urllib.parse
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from suite import audit, cli, people, vault
from suite.services.spec import ServiceSpec, Strategy, StrategyKind
from suite.settings import Settings, child_env
from suite.vault_policy import APPROVAL_ROLE, PREFECT_AUTH_KV
from tasks import rollout
from tasks.control import Active, Command, Releases
from tasks.release import Approval, approval_checker, ask_approval
from tasks.report import ReleaseRecord
from tasks.targets.base import Workload

pytestmark = pytest.mark.integration
PASSWORD = "correct-horse-battery"


def run(platform: Settings, token_file: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    """`suite ...` in this process as the person whose login is cached in ``token_file``."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(out):
        for key, value in child_env(platform).items():
            if key.startswith("SUITE_"):
                mp.setenv(key, value)
        mp.setenv("SUITE_TOKEN_FILE", str(token_file))
        mp.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def people_dir(platform: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users vic (viewer), rex (releaser), carol (approver), ada (admin), made with the
    operator's admin token (no login), each logged in with a cache of their own."""
    home = tmp_path_factory.mktemp("people")
    for name, role in (("vic", "viewer"), ("rex", "releaser"), ("carol", "approver"),
                       ("ada", "admin")):
        code, out = run(platform, home / "operator", "users", "add", name, "--role", role,
                        "--password-stdin", stdin=PASSWORD + "\n")
        assert code == 0, out
        code, out = run(platform, home / name, "login", name, "--password-stdin",
                        stdin=PASSWORD + "\n")
        assert code == 0 and f"userpass:{name} (role {role})" in out, out
    return home


def as_user(platform: Settings, people_dir: Path, name: str) -> Settings:
    return replace(platform, token_file=people_dir / name)


def test_the_login_is_cached_0600_with_its_expiry_and_whoami_says_who(
        platform: Settings, people_dir: Path) -> None:
    assert stat.S_IMODE((people_dir / "carol").stat().st_mode) == 0o600
    cached = json.loads((people_dir / "carol").read_text())
    assert cached["name"] == "carol" and cached["expires"]
    code, out = run(platform, people_dir / "carol", "whoami", "--json")
    who = json.loads(out)
    assert code == 0 and who["identity"] == "userpass:carol" and who["role"] == "approver"
    assert who["expires"]


def test_a_wrong_password_is_refused(platform: Settings, people_dir: Path,
                                     tmp_path: Path) -> None:
    code, out = run(platform, tmp_path / "tok", "login", "rex", "--password-stdin",
                    stdin="not-the-password\n")
    assert code == 1 and "wrong name or password" in out
    assert not (tmp_path / "tok").exists()


def test_a_viewer_cannot_start_a_release(platform: Settings, people_dir: Path) -> None:
    code, out = run(platform, people_dir / "vic", "release", "hello")
    assert code == 1, out
    assert "userpass:vic has role viewer" in out and "needs the releaser role" in out


def test_only_releasers_and_up_may_read_prefects_credential(
        platform: Settings, people_dir: Path) -> None:
    path = PREFECT_AUTH_KV.removeprefix("secret/data/")
    for name, allowed in (("vic", False), ("rex", True), ("carol", True)):
        session = people.load_session(as_user(platform, people_dir, name))
        assert session is not None
        client = hvac.Client(url=platform.vault_addr, token=session.token)
        try:
            client.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                     raise_on_deleted_version=True)
            read = True
        except hvac.exceptions.Forbidden:
            read = False
        except hvac.exceptions.InvalidPath:  # allowed, nothing stored there (yet)
            read = True
        assert read is allowed, name


def test_a_releaser_cannot_approve_or_promote(platform: Settings, people_dir: Path) -> None:
    code, out = run(platform, people_dir / "rex", "approve-token")
    assert code == 1 and "userpass:rex (role releaser) may not approve" in out, out
    code, out = run(platform, people_dir / "rex", "release", "promote", "hello")
    assert code == 1 and "needs the approver role" in out, out
    # and the operator's admin token has no person behind it: no approval either
    code, out = run(platform, people_dir / "nobody", "approve-token")
    assert code == 2 and "run `suite login NAME` as an approver" in out, out


def worker(platform: Settings) -> Settings:
    """The settings a flow run has: the worker's AppRole (which introspects approvals)."""
    vdir = vault.vault_dir(platform)
    return replace(platform, vault_role_id_file=vdir / "worker-role-id",
                   vault_secret_id_file=vdir / "worker-secret-id")


def approval_jwt(platform: Settings, people_dir: Path, name: str = "carol") -> str:
    code, out = run(platform, people_dir / name, "approve-token")
    assert code == 0, out
    return out.strip()


def test_an_approvers_token_names_the_approver_and_the_answer_records_it(
        platform: Settings, people_dir: Path) -> None:
    token = approval_jwt(platform, people_dir)
    check = approval_checker(worker(platform))
    assert approval_checker(worker(platform), claim=False)(token).approver == "userpass:carol"
    # the MARGINAL pause: what the form says besides the token does not name anyone
    answer = ask_approval(ReleaseRecord("r1", "web", "canary", "local"), 1, 60, check,
                          pause=lambda key, t: Approval(decision="approve",
                                                        identity_token=token, reason="ok"))
    assert answer is not None and answer.approver == "userpass:carol"


def test_an_approval_token_answers_once_and_a_second_use_is_refused(
        platform: Settings, people_dir: Path) -> None:
    token = approval_jwt(platform, people_dir)
    check = approval_checker(worker(platform))
    assert check(token).approver == "userpass:carol"
    again = check(token)
    assert again.approver is None and "already used" in again.reason, again.reason
    # a second pause answered with it keeps waiting; a fresh token answers it
    answers = iter([token, approval_jwt(platform, people_dir)])
    refused: list[str] = []
    answer = ask_approval(ReleaseRecord("r2", "web", "canary", "local"), 1, 60, check,
                          refused=refused.append,
                          pause=lambda key, t: Approval(decision="approve",
                                                        identity_token=next(answers), reason=""))
    assert answer is not None and answer.approver == "userpass:carol"
    assert len(refused) == 1 and "already used" in refused[0]
    # the use is recorded by the token's hash (never the token), and the worker may not undo it
    admin = vault.client(platform)
    used = vault.get_secret(admin, people.used_path(token), "approver")
    assert used == "userpass:carol" and token not in people.used_path(token)
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.worker_client(platform).secrets.kv.v2.create_or_update_secret(
            path=f"suite/{people.used_path(token)}", secret={"approver": "x"})


def forged(token: str, **claims: object) -> str:
    head, body, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(claims)
    new = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{head}.{new}.{sig}"


def test_a_forged_token_is_refused(platform: Settings, people_dir: Path) -> None:
    check = approval_checker(worker(platform))
    token = approval_jwt(platform, people_dir, "carol")
    renamed = check(forged(token, username="mallory"))
    assert renamed.approver is None and "Vault refused" in renamed.reason
    assert check("eyJ.not.ajwt").approver is None
    assert "no approval token" in check("").reason


def test_an_expired_token_is_refused(platform: Settings, people_dir: Path) -> None:
    admin = vault.client(platform)
    role = admin.secrets.identity.read_role(name=APPROVAL_ROLE)["data"]
    admin.secrets.identity.create_or_update_role(name=APPROVAL_ROLE, key=role["key"],
                                                 template=role["template"], ttl="2s")
    try:
        token = approval_jwt(platform, people_dir)
    finally:
        admin.secrets.identity.create_or_update_role(name=APPROVAL_ROLE, key=role["key"],
                                                     template=role["template"],
                                                     ttl=people.APPROVAL_TTL)
    exp = people.jwt_claims(token)["exp"]
    while time.time() <= exp + 1:  # the token's own expiry, then a second of clock slack
        time.sleep(0.2)
    checked = approval_checker(worker(platform))(token)
    assert checked.approver is None and "expired" in checked.reason.lower(), checked.reason


def test_a_promote_is_recorded_as_the_tokens_identity_and_a_forged_one_refused(
        platform: Settings, people_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a home of its own (its own trail and release files) that signs with the platform's Vault
    home = tmp_path / "home"
    home.mkdir()
    (home / "vault").symlink_to(vault.vault_dir(platform))
    settings = replace(worker(platform), home=home)
    Releases(settings).start(Active("web", "r1", "run", "canary", "now"))
    spec = ServiceSpec(service="web", port=8080, readiness="/",
                       strategy=Strategy(StrategyKind.CANARY))
    ro = rollout.Rollout(ReleaseRecord("r1", "web", "canary", "local"), settings, "local",
                         spec, Workload(service="web", release="r1", version="v", image="i"),
                         {})
    monkeypatch.setattr(rollout, "audit_task", rollout.audit_task.fn)  # no Prefect API needed

    def send(actor: str, token: str) -> None:
        Releases(settings).send("web", Command.PROMOTE, actor, "ship it", token)

    send("userpass:carol", forged(approval_jwt(platform, people_dir), username="mallory"))
    assert rollout._command(ro) is None  # refused: the run goes on as it was
    send("someone-typed-this", approval_jwt(platform, people_dir))
    assert rollout._command(ro) == Command.PROMOTE
    records = [(r.action, r.actor) for r in audit.trail(settings).records()]
    assert records[-2][0] == "release.promote.refused"
    assert records[-1] == ("release.promote", "userpass:carol")


def totp(secret: str, at: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    offset = digest[-1] & 15
    return f"{(struct.unpack('>I', digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 10**6:06d}"


def test_a_totp_user_logs_in_only_with_a_passcode(platform: Settings, people_dir: Path) -> None:
    code, out = run(platform, people_dir / "operator", "users", "add", "tess", "--role",
                    "viewer", "--totp", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, out
    url = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["secret"][0]
    code, out = run(platform, people_dir / "tess", "login", "tess", "--password-stdin",
                    "--passcode", "000000", stdin=PASSWORD + "\n")
    assert code == 1 and "passcode was not accepted" in out, out
    code, out = run(platform, people_dir / "tess", "login", "tess", "--password-stdin",
                    "--passcode", totp(secret, time.time()), stdin=PASSWORD + "\n")
    assert code == 0 and "userpass:tess (role viewer)" in out, out


def test_what_a_logged_in_admin_does_is_recorded_as_them(platform: Settings,
                                                         people_dir: Path) -> None:
    code, out = run(platform, people_dir / "ada", "users", "add", "dora", "--role", "viewer",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, out
    last = audit.trail(platform).records()[-1]
    assert (last.action, last.subject, last.actor) == ("user.write", "userpass:dora",
                                                       "userpass:ada")
    # and a user without the admin role may not add users
    code, out = run(platform, people_dir / "carol", "users", "add", "eve", "--role", "admin",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1 and "needs the admin role" in out, out
