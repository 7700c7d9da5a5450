"""The release frontend's per-source rate limit: rendered from the platform settings (suite up
--rate-limit, SUITE_RATE_LIMIT, platform.json), accepted by the real `haproxy -c`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.platform.manager import save_config
from suite.platform.services.haproxy import HaproxyService
from suite.settings import DEFAULT_RATE_LIMIT, Settings, load


def _release_frontend(text: str) -> str:
    return text.split("frontend release", 1)[1].split("frontend preview", 1)[0]


def test_rate_limit_is_a_stick_table_on_the_release_frontend_only(tmp_path: Path) -> None:
    text = HaproxyService(Settings(home=tmp_path, rate_limit=7)).render()
    front = _release_frontend(text)
    assert "stick-table type ipv6 size 100k expire 30s store http_req_rate(10s)" in front
    assert "http-request track-sc0 src" in front
    assert "http-request return status 429" in front and "hdr Retry-After 10" in front
    assert "if { sc_http_req_rate(0) gt 70 }" in front  # 7/s averaged over 10 s
    assert text.count("track-sc0") == 1  # preview and metrics are not limited


def test_rate_limit_zero_renders_no_limit(tmp_path: Path) -> None:
    front = _release_frontend(HaproxyService(Settings(home=tmp_path, rate_limit=0)).render())
    assert "track-sc0" not in front and "429" not in front


@pytest.mark.skipif(shutil.which("haproxy") is None,
                    reason="haproxy is not installed (apt-get install haproxy)")
@pytest.mark.parametrize("limit", [0, 1, DEFAULT_RATE_LIMIT])
def test_rendered_configuration_is_valid_for_haproxy(tmp_path: Path, limit: int) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HaproxyService(Settings(home=tmp_path, rate_limit=limit)).render())
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_rate_limit_comes_from_env_over_the_saved_platform_config(tmp_path: Path) -> None:
    assert load({"SUITE_HOME": str(tmp_path)}).rate_limit == DEFAULT_RATE_LIMIT
    save_config(Settings(home=tmp_path).with_overrides(rate_limit=50))
    assert json.loads((tmp_path / "platform.json").read_text())["rate_limit"] == 50
    assert load({"SUITE_HOME": str(tmp_path)}).rate_limit == 50  # later commands, reloads
    assert load({"SUITE_HOME": str(tmp_path), "SUITE_RATE_LIMIT": "0"}).rate_limit == 0


def test_negative_rate_limit_is_refused_naming_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rate limit is -1 requests/s .*expected 0 for none"):
        Settings(home=tmp_path, rate_limit=-1)
    with pytest.raises(ConfigError, match=r"SUITE_RATE_LIMIT='x' is not an integer"):
        load({"SUITE_HOME": str(tmp_path), "SUITE_RATE_LIMIT": "x"})
