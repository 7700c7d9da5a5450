"""Signing scan waivers as an approver, and verifying them for the scan gate, with the Vault
transit key ``suite-waiver`` (what is signed and when a waiver counts: :mod:`policies.waivers`).

The approver is the identity of the Vault token that signs (its userpass name, else the token's
display name), never a name typed in. Signing rewrites only the ``waivers:`` block of the policy
file; the rest of the file, its comments included, stays as it was.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests
import yaml

from policies import scan as scan_policy
from policies.waivers import (
    SIGNATURE_PREFIX,
    Verify,
    WaiverCheck,
    WaiverStatus,
    canonical,
    check_all,
)
from suite.errors import ConfigError, VaultError
from suite.settings import Settings
from suite.vault_policy import WAIVER_KEY

BATCH = 500
TOP_LEVEL_KEY = re.compile(r"^[^\s#-]")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def identity(client: hvac.Client) -> str:
    """Who holds ``client``'s token, as Vault says: ``userpass:<name>`` for a person who logged
    in, else ``token:<display name>`` (``token:suite-admin``: the operator's admin token)."""
    try:
        data = client.auth.token.lookup_self()["data"]
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise VaultError(f"cannot look up the signing Vault token ({type(exc).__name__}); log "
                         f"in as an approver first") from exc
    user = (data.get("meta") or {}).get("username")
    if user:
        return f"userpass:{user}"
    name = str(data.get("display_name") or "").removeprefix("token-")
    if not name:
        raise VaultError("the signing Vault token has no name (no userpass user, no display "
                         "name): sign with an approver's own token (`suite login`)")
    return f"token:{name}"


def verifier(client: hvac.Client | Callable[[], hvac.Client]) -> Verify:
    """A batch check of (content, ``vault:vN:…``) pairs against ``suite-waiver``; a Vault that
    cannot be asked is an error, never a pass."""
    def verify(items: Sequence[tuple[bytes, str]]) -> list[bool]:
        vc = client() if callable(client) else client
        out: list[bool] = []
        for start in range(0, len(items), BATCH):
            batch = [{"input": _b64(data), "signature": sig}
                     for data, sig in items[start:start + BATCH]]
            try:
                resp = vc.adapter.post(f"/v1/transit/verify/{WAIVER_KEY}",
                                       json={"batch_input": batch})
            except hvac.exceptions.Forbidden as exc:
                raise VaultError(f"Vault refused to verify scan waivers with {WAIVER_KEY!r} "
                                 f"(403): this identity's policy lacks "
                                 f"transit/verify/{WAIVER_KEY}; `suite up` rewrites the "
                                 f"policies") from exc
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                raise VaultError(f"verifying scan waivers with transit key {WAIVER_KEY!r} "
                                 f"failed ({type(exc).__name__}); is Vault up and unsealed? "
                                 f"(`suite status`)") from exc
            data = resp["data"] if isinstance(resp, dict) else resp.json()["data"]
            out += [bool(r.get("valid")) for r in data["batch_results"]]
        return out
    return verify


def settings_verifier(settings: Settings) -> Verify:
    """The gate's check, as the process's own Vault identity (the worker's AppRole in a flow
    run, the admin token in the CLI): every identity may verify."""
    from suite import vault

    return verifier(lambda: vault.client(settings))


def check_policy(policy: scan_policy.ScanPolicy, verify: Verify, today: date,
                 source: str) -> dict[scan_policy.Waiver, WaiverCheck]:
    return check_all(policy.waivers, verify, today, policy.waiver_max_days, source)


def sign(waiver: scan_policy.Waiver, client: hvac.Client, now: datetime) -> scan_policy.Waiver:
    """``waiver`` signed by the holder of ``client``'s token (who must be allowed to sign with
    ``suite-waiver``: the approver role)."""
    unsigned = waiver.model_copy(update={
        "approver": identity(client),
        "signed_at": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "signature": ""})
    try:
        resp = client.secrets.transit.sign_data(name=WAIVER_KEY,
                                                hash_input=_b64(canonical(unsigned)))
    except hvac.exceptions.Forbidden as exc:
        raise VaultError(f"Vault refused to sign waiver {waiver.id} with {WAIVER_KEY!r} (403): "
                         f"only the approver role may sign waivers; log in as an approver"
                         ) from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise VaultError(f"signing waiver {waiver.id} with transit key {WAIVER_KEY!r} failed "
                         f"({type(exc).__name__}); is Vault up and unsealed? (`suite status`)"
                         ) from exc
    signature = f"{SIGNATURE_PREFIX}{WAIVER_KEY}:{resp['data']['signature']}"
    return unsigned.model_copy(update={"signature": signature})


@dataclass(frozen=True)
class Signed:
    before: scan_policy.Waiver
    after: scan_policy.Waiver


def to_sign(checks: dict[scan_policy.Waiver, WaiverCheck], ids: Sequence[str], today: date,
            max_days: int) -> list[scan_policy.Waiver]:
    """The waivers a `suite waiver sign` run signs: those named by ``ids`` (signed again even
    when valid), else every one that does not count yet. Expired or over-long ones are refused:
    they need a new expiry first."""
    known = {c.waiver.id for c in checks.values()}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"no waiver with id {', '.join(map(repr, unknown))} in the policy "
                          f"(ids: {', '.join(sorted(known)) or 'none'})")
    chosen = [c.waiver for c in checks.values()
              if (c.waiver.id in ids if ids else not c.valid)]
    for w in chosen:
        if w.expires < today:
            raise ConfigError(f"waiver {w.id} expired on {w.expires}: set a new `expires` "
                              f"(at most {max_days} days ahead) before signing it")
        if (w.expires - today).days > max_days:
            raise ConfigError(f"waiver {w.id} expires {w.expires}, {(w.expires - today).days} "
                              f"days from today: the policy's waiver_max_days is {max_days}; "
                              f"set an earlier `expires`")
    return chosen


def sign_file(path: Path, client: hvac.Client, chosen: Sequence[scan_policy.Waiver],
              now: datetime) -> list[Signed]:
    """Sign ``chosen`` and write them back into ``path``'s ``waivers:`` block in place."""
    policy = scan_policy.load(path)
    done = {w: sign(w, client, now) for w in chosen}
    waivers = [done.get(w, w) for w in policy.waivers]
    write_waivers(path, waivers)
    if scan_policy.load(path).waivers != tuple(waivers):  # the rewrite must say what we signed
        raise ConfigError(f"rewriting the waivers of {path} did not round-trip; the file was "
                          f"changed: check it with `git diff {path}`")
    return [Signed(before, after) for before, after in done.items()]


def _as_yaml(waiver: scan_policy.Waiver) -> dict[str, Any]:
    data = waiver.model_dump(exclude_none=True)
    return {k: v for k, v in data.items() if v != ""}


def write_waivers(path: Path, waivers: Sequence[scan_policy.Waiver]) -> None:
    """Replace the top-level ``waivers:`` block of ``path`` (append one if there is none)."""
    from suite.platform.files import atomic_write

    lines = path.read_text().splitlines(keepends=True)
    block = yaml.safe_dump({"waivers": [_as_yaml(w) for w in waivers]}, sort_keys=False,
                           allow_unicode=True, width=100)
    start = next((i for i, line in enumerate(lines) if line.startswith("waivers:")), None)
    if start is None:
        text = "".join(lines)
        out = text + ("" if not text or text.endswith("\n") else "\n") + block
    else:
        end = next((i for i in range(start + 1, len(lines)) if TOP_LEVEL_KEY.match(lines[i])),
                   len(lines))
        while end > start + 1 and (lines[end - 1].startswith("#") or not lines[end - 1].strip()):
            end -= 1  # comments at the margin above the next key are that key's
        out = "".join(lines[:start]) + block + "".join(lines[end:])
    atomic_write(path, out, mode=path.stat().st_mode & 0o777)


def describe(check: WaiverCheck) -> str:
    w = check.waiver
    scope = f" service={w.service}" if w.service else ""
    where = f" location={w.location}" if w.location else ""
    state = "OK" if check.status is WaiverStatus.VALID else check.status.value.upper()
    by = f" signed by {w.approver} at {w.signed_at}" if w.signature else ""
    line = f"{state:<9} {w.id}{scope}{where} until {w.expires}{by}: {w.reason}"
    return line + (f"\n          {check.reason}" if check.reason else "")
