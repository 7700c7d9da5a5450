"""The HEAD's counter anchored outside the trail, in Vault KV v2, against a rollback.

A log cut back to an old length together with its old (validly signed) HEAD passes the chain and
the HEAD check; what it cannot do is lower the counter Vault holds. After every append (inside
the trail's lock) the anchor stores ``{seq, hash}`` of the new HEAD with check-and-set; verify
fails when Vault's seq is past the end of the log or the log's record at that seq has another
hash. The counter is never lowered: a CAS conflict re-reads and writes only a higher seq.

One KV write per append: the version for ``cas`` is the one this process wrote last, read again
only on the first append and after a conflict. Each trail directory has its own key under
``secret/suite/audit/head/`` (named by a digest of the directory), so a test's trail or a second
home does not share the platform trail's counter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import hvac
import hvac.exceptions
import requests

from suite.errors import AuditError
from suite.vault_policy import KV_MOUNT, KV_PREFIX

HEAD_PREFIX = f"{KV_PREFIX}/audit/head"
CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class Anchored:
    seq: int
    hash: str
    version: int  # KV version (0: nothing stored yet)


class Anchor(Protocol):
    def read(self) -> Anchored | None: ...

    def advance(self, seq: int, hash: str) -> None: ...


def head_path(directory: Path) -> str:
    """The KV path (below the mount) of the counter of the trail in ``directory``."""
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return f"{HEAD_PREFIX}/{key}"


class VaultAnchor:
    """``client`` is a client or a function returning one (the audit AppRole's, logged in on
    first use)."""

    def __init__(self, client: hvac.Client | Callable[[], hvac.Client], path: str) -> None:
        self._client = client
        self.path = path
        self._held: Anchored | None = None  # what this process last read or wrote

    @property
    def client(self) -> hvac.Client:
        if callable(self._client):
            self._client = self._client()
        return self._client

    def _fail(self, doing: str, exc: Exception) -> AuditError:
        return AuditError(
            f"{doing} the audit HEAD counter at {KV_MOUNT}/{self.path} in Vault failed "
            f"({type(exc).__name__}: {exc}); is Vault up and unsealed, and has `suite up` "
            f"written the suite-audit policy? (`suite status`)")

    def read(self) -> Anchored | None:
        try:
            resp = self.client.secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=KV_MOUNT, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            self._held = Anchored(0, "", 0)
            return None
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise self._fail("reading", exc) from exc
        data, meta = resp["data"]["data"], resp["data"]["metadata"]
        try:
            anchored = Anchored(int(data["seq"]), str(data["hash"]), int(meta["version"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(
                f"the audit HEAD counter at {KV_MOUNT}/{self.path} is not {{seq, hash}} "
                f"(got keys {sorted(data) if isinstance(data, dict) else data!r}): it was "
                f"edited outside the suite") from exc
        self._held = anchored
        return anchored

    def advance(self, seq: int, hash: str) -> None:
        """Store ``seq``/``hash`` unless Vault already holds a seq at least as high."""
        for _ in range(CAS_ATTEMPTS):
            held = self._held or self.read() or Anchored(0, "", 0)
            if held.seq >= seq:  # never lower it (a log rolled back and appended to)
                return
            try:
                resp = self.client.secrets.kv.v2.create_or_update_secret(
                    path=self.path, secret={"seq": seq, "hash": hash}, cas=held.version,
                    mount_point=KV_MOUNT)
            except hvac.exceptions.InvalidRequest as exc:
                if "check-and-set" not in str(exc):
                    raise self._fail("writing", exc) from exc
                self._held = None  # another writer went first: re-read
                continue
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                self._held = None
                raise self._fail("writing", exc) from exc
            self._held = Anchored(seq, hash, int(resp["data"]["version"]))
            return
        raise AuditError(
            f"the audit HEAD counter at {KV_MOUNT}/{self.path} changed under every one of "
            f"{CAS_ATTEMPTS} check-and-set writes; run the append again")
