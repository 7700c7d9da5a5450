"""A Vault that does not answer is not a lost admin token: the bootstrap's client says Vault did
not answer (and changes nothing) instead of "no valid admin token … generate-root"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite import vault
from suite.errors import ServiceUnavailable, VaultError
from suite.settings import Settings
from tests.conftest import free_ports


def settings_with_admin_token(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path, ports=free_ports())  # nothing listens on Vault's port
    vdir = vault.vault_dir(settings)
    vdir.mkdir(parents=True)
    (vdir / "init.json").write_text(json.dumps({"unseal_keys_b64": ["k"]}))
    (vdir / "admin-token").write_text("s.admin\n")
    return settings


def test_unreachable_vault_is_unavailable_not_a_missing_token(tmp_path: Path) -> None:
    settings = settings_with_admin_token(tmp_path)
    with pytest.raises(ServiceUnavailable, match="did not answer while checking the token") as err:
        vault.root_client(settings)
    assert "s.admin" not in str(err.value)  # the token itself is never in the message
    assert (vault.vault_dir(settings) / "admin-token").read_text() == "s.admin\n"


def test_no_admin_token_file_and_no_root_token_names_the_recovery(tmp_path: Path) -> None:
    settings = settings_with_admin_token(tmp_path)
    (vault.vault_dir(settings) / "admin-token").unlink()
    with pytest.raises(VaultError, match="no valid Vault admin token"):
        vault.root_client(settings)
