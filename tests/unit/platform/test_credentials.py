"""Platform passwords: the service that checks one makes it; a client only reads it, and a
missing file is an error naming the file and `suite up`, never a password of its own."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from suite import settings as settings_mod
from suite.errors import ConfigError
from suite.platform import credentials
from suite.platform.services.haproxy import HaproxyService
from suite.platform.services.prometheus import PrometheusService
from suite.settings import Settings


def test_a_client_without_the_file_is_told_to_run_suite_up_and_makes_nothing(
        tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    where = credentials.path(settings, "prometheus")
    with pytest.raises(ConfigError, match="run `suite up`") as info:
        credentials.password(settings, "prometheus")
    assert str(where) in str(info.value)
    assert not where.exists()
    with pytest.raises(ConfigError, match="registry-puller"):
        credentials.registry_login(settings, "puller")


def test_an_empty_file_is_missing_for_a_client(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    where = credentials.path(settings, "haproxy")
    where.parent.mkdir(parents=True)
    where.write_text("\n")
    with pytest.raises(ConfigError, match="no haproxy password"):
        credentials.password(settings, "haproxy")


def test_the_owner_makes_it_once_0600_and_clients_read_the_same(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    made = credentials.ensure_password(settings, "postgres")
    where = credentials.path(settings, "postgres")
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
    assert len(made) >= 24
    assert credentials.ensure_password(settings, "postgres") == made
    assert credentials.password(settings, "postgres") == made


def test_services_make_the_passwords_they_check_as_they_prepare(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    PrometheusService(settings).prepare()
    assert credentials.basic_auth(settings, "prometheus")["Authorization"].startswith("Basic ")
    text = HaproxyService(settings).render()
    assert f"stats auth suite:{credentials.password(settings, 'haproxy')}" in text


def test_makers_at_once_agree_on_one_password(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings(home=tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = set(pool.map(lambda _: credentials.ensure_password(settings, "registry-puller"),
                            range(32)))
    assert made == {credentials.password(settings, "registry-puller")}
    assert [p.name for p in credentials.path(settings, "registry-puller").parent.iterdir()] \
        == ["registry-puller.password"]


def test_suite_up_makes_every_password_before_any_service_starts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    credentials.prepare(settings)
    for service in credentials.SERVICES:
        assert credentials.password(settings, service)


def test_an_explicit_mlflow_login_in_the_environment_stands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process given MLflow's login explicitly (mlflow_env: a test, a bench, another home's
    platform) keeps it, even where SUITE_HOME has no password file of its own; without one the
    missing file is the error naming `suite up`."""
    monkeypatch.setenv("SUITE_HOME", str(tmp_path))
    settings = settings_mod.load()  # as the CLI's: ports from SUITE_*_PORT if a test set them
    monkeypatch.setattr(credentials, "_mlflow_logged_in", set())
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"mlflow-suite.*run `suite up`"):
        credentials.ensure_mlflow_login(settings.mlflow_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "given")
    credentials.ensure_mlflow_login(settings.mlflow_uri)
    assert (credentials.os.environ["MLFLOW_TRACKING_USERNAME"],
            credentials.os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("someone", "given")
