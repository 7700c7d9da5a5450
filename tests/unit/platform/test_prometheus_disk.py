"""`suite status` names a Prometheus whose data directory is nearly full (it then drops samples
and every analysis sees no data), with the path and the free space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from suite.platform.services import prometheus
from suite.settings import Settings


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def _usage(free: int) -> Callable[[object], Usage]:
    def disk_usage(path: object) -> Usage:
        return Usage(1 << 30, (1 << 30) - free, free)
    return disk_usage


@pytest.mark.parametrize(("free", "said"), [(10 << 20, "low disk: 10.0 MiB free of 1.0 GiB"),
                                            (900 << 20, "")])
def test_prometheus_detail_names_a_nearly_full_data_directory(tmp_path: Path, monkeypatch,
                                                              free, said):
    service = prometheus.PrometheusService(Settings(home=tmp_path))
    (service.state_dir / "data").mkdir(parents=True)
    monkeypatch.setattr(prometheus.shutil, "disk_usage", _usage(free))
    monkeypatch.setattr("suite.platform.files.shutil.disk_usage", _usage(free))
    detail = service.detail()
    assert detail.startswith(said)
    if said:
        assert str(service.state_dir / "data") in detail and "free space there" in detail
