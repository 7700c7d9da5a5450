"""The Vault policies as written: each signing key in exactly one policy's sign paths."""

from __future__ import annotations

import re

import pytest

from suite.vault_policy import (
    ADMIN_POLICY_NAME,
    LEGACY_SIGN_KEY,
    SIGN_KEYS,
    SIGNERS,
    WAIVER_KEY,
    WAIVER_SIGN_POLICY,
    WORKER_ROLE,
    policies,
)

SIGN_PATH = re.compile(r'path "transit/sign/([^"]+)"')


def signs(policy: str) -> set[str]:
    return set(SIGN_PATH.findall(policy))


@pytest.mark.parametrize("key", [*SIGN_KEYS, LEGACY_SIGN_KEY])
def test_each_signing_key_is_signable_by_at_most_one_policy(key: str):
    holders = [name for name, text in policies().items() if key in signs(text)]
    expected = [s.role for s in SIGNERS.values() if s.key == key]
    assert holders == expected  # the legacy key: nobody


@pytest.mark.parametrize("name", [WORKER_ROLE, ADMIN_POLICY_NAME])
def test_the_worker_and_the_admin_sign_nothing_but_verify_everything(name: str):
    text = policies()[name]
    assert signs(text) == set()
    for key in (*SIGN_KEYS, WAIVER_KEY, LEGACY_SIGN_KEY):
        assert f'path "transit/verify/{key}"' in text


def test_only_the_approver_policy_signs_waivers():
    from suite.vault_policy import APPROVER_POLICY_NAME, PEOPLE_ROLES

    holders = [name for name, text in policies().items() if WAIVER_KEY in signs(text)]
    assert holders == [APPROVER_POLICY_NAME]  # not an AppRole, not the operator's admin token
    assert signs(WAIVER_SIGN_POLICY) == {WAIVER_KEY}
    may = [role for role, held in PEOPLE_ROLES.items() if APPROVER_POLICY_NAME in held]
    assert may == ["approver", "admin"]


def test_no_policy_uses_a_wildcard_sign_path():
    for name, text in policies().items():
        assert not any("*" in key for key in signs(text)), name


def test_only_the_audit_signer_may_write_the_audit_head_counter():
    from suite.vault_policy import AUDIT_HEAD_KV, Purpose

    audit_role = SIGNERS[Purpose.AUDIT].role
    holders = [name for name, text in policies().items() if f'path "{AUDIT_HEAD_KV}"' in text]
    assert holders == [audit_role]
    line = next(x for x in policies()[audit_role].splitlines() if AUDIT_HEAD_KV in x)
    assert '["create", "read", "update"]' in line
