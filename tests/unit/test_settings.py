from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.settings import DEFAULT_PORTS, Settings, load


def test_defaults_put_state_under_dot_suite_of_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = load({})
    assert settings.home == tmp_path / ".suite"
    assert dict(settings.ports) == DEFAULT_PORTS
    assert settings.url("prefect") == "http://127.0.0.1:4200"
    assert settings.prefect_api_url == "http://127.0.0.1:4200/api"


def test_suite_home_and_port_env_override(tmp_path: Path):
    settings = load({"SUITE_HOME": str(tmp_path), "SUITE_MLFLOW_PORT": "6001"})
    assert settings.home == tmp_path
    assert settings.port("mlflow") == 6001


def test_saved_platform_config_is_used_unless_env_says_otherwise(tmp_path: Path):
    (tmp_path / "platform.json").write_text(
        json.dumps({"ports": {"prefect": 4300}, "workers": 3, "database": "postgres"})
    )
    settings = load({"SUITE_HOME": str(tmp_path)})
    assert (settings.port("prefect"), settings.workers, settings.database) == (4300, 3, "postgres")
    env_wins = load({"SUITE_HOME": str(tmp_path), "SUITE_PREFECT_PORT": "4400"})
    assert env_wins.port("prefect") == 4400


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SUITE_PREFECT_PORT": "abc"}, "SUITE_PREFECT_PORT='abc' is not an integer"),
        ({"SUITE_PREFECT_PORT": "70000"}, "port for prefect is 70000 (expected 1..65535)"),
        ({"SUITE_DATABASE": "mysql"}, "database 'mysql' is not supported"),
        ({"SUITE_WORKERS": "-1"}, "workers is -1"),
    ],
)
def test_bad_settings_name_the_value_and_the_expectation(tmp_path: Path, env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load({"SUITE_HOME": str(tmp_path), **env})


def test_unknown_service_port_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no port configured for service 'nope'"):
        Settings(home=tmp_path).port("nope")
