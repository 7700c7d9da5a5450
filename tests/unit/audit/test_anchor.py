"""The HEAD counter in Vault KV against a fake KV v2 with real check-and-set semantics: one
write per append, a conflict re-reads, and the counter is never lowered."""

from __future__ import annotations

from typing import Any

import hvac.exceptions
import pytest

from suite.audit.anchor import VaultAnchor
from suite.errors import AuditError


class FakeKV:
    def __init__(self) -> None:
        self.data: dict[str, Any] | None = None
        self.version = 0
        self.reads = self.writes = 0
        self.down = False

    def read_secret_version(self, *, path: str, mount_point: str,
                            raise_on_deleted_version: bool) -> dict[str, Any]:
        self.reads += 1
        if self.down:
            raise hvac.exceptions.VaultDown("sealed")
        if self.data is None:
            raise hvac.exceptions.InvalidPath("no secret")
        return {"data": {"data": dict(self.data), "metadata": {"version": self.version}}}

    def create_or_update_secret(self, *, path: str, secret: dict[str, Any], cas: int,
                                mount_point: str) -> dict[str, Any]:
        if cas != self.version:
            raise hvac.exceptions.InvalidRequest("check-and-set parameter did not match")
        self.writes += 1
        self.data, self.version = dict(secret), self.version + 1
        return {"data": {"version": self.version}}


class FakeClient:
    def __init__(self, kv: FakeKV) -> None:
        self.secrets = type("S", (), {"kv": type("K", (), {"v2": kv})()})()


@pytest.fixture
def kv() -> FakeKV:
    return FakeKV()


def anchor(kv: FakeKV) -> VaultAnchor:
    return VaultAnchor(FakeClient(kv), "suite/audit/head/x")  # type: ignore[arg-type]


def test_one_write_per_append_after_the_first_read(kv):
    a = anchor(kv)
    for seq in range(1, 6):
        a.advance(seq, f"h{seq}")
    assert (kv.reads, kv.writes) == (1, 5) and kv.data == {"seq": 5, "hash": "h5"}


def test_a_cas_conflict_rereads_and_writes_only_a_higher_seq(kv):
    a, b = anchor(kv), anchor(kv)
    a.advance(1, "h1")
    b.advance(2, "h2")  # a's cached version is now stale
    a.advance(3, "h3")
    assert kv.data == {"seq": 3, "hash": "h3"}
    b.advance(3, "other")  # conflict, re-read: Vault already holds seq 3
    assert kv.data == {"seq": 3, "hash": "h3"}


def test_the_counter_is_never_lowered_by_a_rolled_back_log(kv):
    a = anchor(kv)
    a.advance(5, "h5")
    a.advance(4, "forged")
    anchor(kv).advance(4, "forged")
    assert kv.data == {"seq": 5, "hash": "h5"}


def test_a_vault_that_cannot_be_read_is_an_error_naming_the_path(kv):
    kv.down = True
    with pytest.raises(AuditError, match="secret/suite/audit/head/x"):
        anchor(kv).read()
