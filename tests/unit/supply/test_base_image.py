"""Base image inputs: the Debian mirror, the cache location."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.settings import Settings, load
from tasks.images import base


def test_mirror_from_deb822_skips_security(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://security.example/debian-security\n"
                       "Suites: bookworm-security\n\nTypes: deb\nURIs: http://mirror.example/debian\n"
                       "Suites: bookworm\n")
    assert base.debian_mirror(sources, tmp_path / "none") == "http://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb http://mirror.example/debian bookworm main\n")
    assert base.debian_mirror(tmp_path / "none", legacy) == "http://mirror.example/debian"


def test_no_mirror_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Debian mirror"):
        base.debian_mirror(tmp_path / "a", tmp_path / "b")


def test_rootfs_cache_is_shared_and_overridable(tmp_path: Path) -> None:
    assert base.rootfs_tar(Settings(home=tmp_path)) == Path(
        "/var/cache/ultimate-suite/rootfs-bookworm.tar")
    settings = load({"SUITE_HOME": str(tmp_path), "SUITE_IMAGE_CACHE": str(tmp_path / "c")})
    assert base.rootfs_tar(settings) == tmp_path / "c" / "rootfs-bookworm.tar"
