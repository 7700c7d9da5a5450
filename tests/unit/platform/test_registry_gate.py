"""The registry's gate: distribution only on a unix socket, HAProxy checks users and methods."""

from __future__ import annotations

from pathlib import Path

import bcrypt

from suite.platform import credentials
from suite.platform.services import SERVICES, build
from suite.platform.services.registry import RegistryService, RegistryStoreService
from suite.settings import Settings


def test_the_store_listens_only_on_its_unix_socket(tmp_path: Path) -> None:
    store = RegistryStoreService(Settings(home=tmp_path))
    store.prepare()
    config = (store.state_dir / "config.yml").read_text()
    assert "net: unix" in config and f"addr: {store.socket}" in config
    assert store.port is None and store.url == f"unix://{store.socket}"
    assert oct(store.state_dir.stat().st_mode & 0o777) == "0o700"


def test_the_gate_holds_hashes_of_both_users_and_lets_only_the_builder_write(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, ports={"registry": 5123})
    gate = RegistryService(settings)
    gate.prepare()
    text = gate.config_path.read_text()
    assert oct(gate.config_path.stat().st_mode & 0o777) == "0o600"
    assert "bind 127.0.0.1:5123" in text
    assert "group push users builder\n" in text and "group pull users builder,puller" in text
    assert "http-request auth realm suite-registry unless can_pull" in text
    assert "http-request deny deny_status 403 if !reading !can_push" in text
    assert f"server store unix@{RegistryStoreService(settings).socket}" in text
    for role in credentials.REGISTRY_ROLES:
        secret = credentials.registry_login(settings, role)[1]
        assert secret not in text
        line = next(x for x in text.splitlines() if x.strip().startswith(f"user {role} "))
        assert bcrypt.checkpw(secret.encode(), line.split()[-1].encode())


def test_the_gate_starts_after_its_store(tmp_path: Path) -> None:
    names = list(SERVICES)
    assert names.index("registry-store") < names.index("registry")
    assert RegistryService(Settings(home=tmp_path)).requires == ("registry-store",)
    assert {"registry", "registry-store"} <= {s.name for s in build(Settings(home=tmp_path))}


def test_registry_logins_go_only_to_the_platforms_registry(tmp_path: Path) -> None:
    from suite import engine

    settings = Settings(home=tmp_path, ports={"registry": 5123})
    credentials.ensure_password(settings, "registry-puller")  # what the gate's start makes
    login = engine.registry_login(settings, "127.0.0.1:5123/suite/app", "puller")
    assert login == credentials.registry_login(settings, "puller") and login[0] == "puller"
    assert engine.registry_login(settings, "ghcr.io/someone/app", "builder") is None
    assert engine.docker_auth(settings, "127.0.0.1:9999/suite/app", "builder") is None
