"""The environment of platform children is an allow-list of the operator's, never a copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.settings import Settings, child_env, load

OPERATOR = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "HTTPS_PROXY": "http://proxy.internal:3128",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "SUITE_IMAGE_CACHE": "/var/cache/x",
    "VAULT_TOKEN": "s.root-token",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "AKIA0000",
    "GOOGLE_APPLICATION_CREDENTIALS": "/root/gcp.json",
    "ARM_CLIENT_SECRET": "azure-secret",
    "PREFECT_API_KEY": "pnu_secret",
    "PREFECT_API_AUTH_STRING": "suite:secret",
    "PREFECT_SERVER_API_AUTH_STRING": "suite:secret",
    "PYTHONPATH": "/elsewhere",
    "MY_FLAG": "on",
}


@pytest.mark.parametrize("name", ["VAULT_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
                                  "GOOGLE_APPLICATION_CREDENTIALS", "ARM_CLIENT_SECRET",
                                  "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING",
                                  "PREFECT_SERVER_API_AUTH_STRING", "PYTHONPATH", "MY_FLAG"])
def test_child_env_drops_what_is_not_allow_listed(tmp_path: Path, name: str):
    assert name not in child_env(Settings(home=tmp_path), OPERATOR)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "HTTPS_PROXY",
                                  "SSL_CERT_FILE", "SUITE_IMAGE_CACHE"])
def test_child_env_keeps_locale_paths_proxies_and_suite_settings(tmp_path: Path, name: str):
    assert child_env(Settings(home=tmp_path), OPERATOR)[name] == OPERATOR[name]


def test_child_env_adds_the_platform_coordinates(tmp_path: Path):
    settings = Settings(home=tmp_path, docker_host="unix:///run/docker.sock")
    env = child_env(settings, {})
    assert env["SUITE_HOME"] == str(tmp_path)
    assert env["SUITE_VAULT_PORT"] == str(settings.port("vault"))
    assert env["DOCKER_HOST"] == "unix:///run/docker.sock"


def test_suite_pass_env_names_the_extra_variables_a_child_gets(tmp_path: Path):
    settings = load({**OPERATOR, "SUITE_HOME": str(tmp_path), "SUITE_PASS_ENV": "MY_FLAG, "})
    assert settings.pass_env == ("MY_FLAG",)
    env = child_env(settings, OPERATOR)
    assert env["MY_FLAG"] == "on"
    assert "VAULT_TOKEN" not in env


def test_suite_pass_env_with_a_bad_name_says_what_is_expected(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"'MY-FLAG'.*comma-separated names"):
        load({"SUITE_HOME": str(tmp_path), "SUITE_PASS_ENV": "MY-FLAG"})


def test_suite_pass_env_cannot_hand_children_the_prefect_auth_string(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"PREFECT_API_AUTH_STRING.*platform credential"):
        load({"SUITE_HOME": str(tmp_path), "SUITE_PASS_ENV": "PREFECT_API_AUTH_STRING"})
