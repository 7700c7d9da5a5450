"""A release reads only its own service's secrets: the path check, the worker's policy, and the
local target asking for each secret in the workload's service's name (issue 13 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite import vault
from suite.errors import ConfigError, DeployError
from suite.settings import Settings
from suite.vault_policy import (
    APPROVALS_USED_KV,
    RELEASE_TOKEN_ROLE,
    SERVICES_KV,
    WORKER_POLICY,
    policies,
)
from tasks.targets.base import Workload
from tasks.targets.local import EngineRunner


@pytest.mark.parametrize(("service", "path", "ok"), [
    ("web", "services/web/db", True),
    ("web", "/services/web/db/", True),
    ("web", "services/web/a/b", True),
    ("web", "services/api/db", False),
    ("web", "services/web", False),
    ("web", "services/webx/db", False),
    ("web", "services/web/../api/db", False),
    ("web", "webhook/github", False),
    ("web", "platform/prefect", False),
])
def test_service_path_accepts_only_the_services_own_secrets(service: str, path: str, ok: bool):
    if ok:
        assert vault.service_path(service, path) == path.strip("/")
    else:
        with pytest.raises(ConfigError, match=f"under services/{service}/"):
            vault.service_path(service, path)


def test_the_worker_is_denied_services_secrets_and_mints_only_release_tokens():
    assert f'path "{SERVICES_KV}" {{ capabilities = ["deny"] }}' in WORKER_POLICY
    assert f'path "auth/token/create/{RELEASE_TOKEN_ROLE}"' in WORKER_POLICY
    assert 'path "auth/token/create" ' not in WORKER_POLICY
    assert f'path "{APPROVALS_USED_KV}" {{ capabilities = ["create"] }}' in WORKER_POLICY


def test_the_admin_manages_the_release_token_role():
    assert f'path "auth/token/roles/{RELEASE_TOKEN_ROLE}"' in policies()["suite-admin"]


def test_the_service_policy_reads_only_that_services_path():
    text = vault.service_policy("web")
    assert 'path "secret/data/suite/services/web/*" { capabilities = ["read"] }' in text
    assert text.count("path ") == 1


def test_the_environment_asks_for_each_secret_in_the_workloads_service(tmp_path: Path):
    asked: list[tuple[str, str, str]] = []

    def reader(service: str, path: str, key: str) -> str:
        asked.append((service, path, key))
        return "v"

    runner = EngineRunner(Settings(home=tmp_path), reader)
    w = Workload(service="web", release="r", version="v", image="i",
                 secrets=(("PW", "services/web/db#pw"),))
    assert runner._environment(w, "canary")["PW"] == "v"
    assert asked == [("web", "services/web/db", "pw")]
    with pytest.raises(DeployError, match="no Vault reader"):
        EngineRunner(Settings(home=tmp_path))._environment(w, "canary")
