"""The shared tally of ``--workers`` (models/serve/tally.py), the metrics rendered from it, the
readiness of several workers, and how many workers ``--workers 0`` picks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from models.serve.config import ServeConfig, usable_cpus, worker_count
from models.serve.metrics import ServerMetrics
from models.serve.tally import Tally
from tests.unit.models.test_serve_app import run_app

LABELS = 'model="m",version="1"'


def shared(tmp_path: Path, slots: int = 2) -> list[ServerMetrics]:
    path = tmp_path / "tally"
    Tally.create(path, slots)
    return [ServerMetrics(Tally.attach(path, slots, slot)) for slot in range(slots)]


def test_every_worker_renders_the_sum_over_all_workers(tmp_path: Path) -> None:
    a, b = shared(tmp_path)
    a.bind("m", "1", "u")
    b.bind("m", "1", "u")
    for metrics, code in ((a, 200), (b, 200), (b, 422)):
        metrics.begin_request()
        metrics.end_request(code, 0.001)
    a.observe_batch(2, 0.0001)
    b.observe_batch(1, 0.0001)
    for metrics in (a, b):
        text = metrics.render().decode()
        assert f'model_server_requests_total{{code="200",{LABELS}}} 2.0' in text
        assert f'model_server_requests_total{{code="422",{LABELS}}} 1.0' in text
        assert f"model_server_request_duration_seconds_count{{{LABELS}}} 3.0" in text
        assert f"model_server_batch_size_sum{{{LABELS}}} 3.0" in text
        assert "model_server_inflight_requests 0.0" in text


def test_requests_before_the_model_loads_count_under_empty_labels(tmp_path: Path) -> None:
    a, b = shared(tmp_path)
    a.observe_request(503, 0.0001)
    b.bind("m", "1", "u")
    b.observe_request(200, 0.0001)
    text = a.render().decode()
    assert 'model_server_requests_total{code="503",model="",version=""} 1.0' in text
    assert f'model_server_requests_total{{code="200",{LABELS}}} 1.0' in text


def test_in_flight_requests_add_up_over_workers(tmp_path: Path) -> None:
    a, b = shared(tmp_path)
    a.begin_request()
    b.begin_request()
    b.begin_request()
    assert "model_server_inflight_requests 3.0" in a.render().decode()


def test_relabelling_a_slot_starts_its_series_from_zero(tmp_path: Path) -> None:
    (a,) = shared(tmp_path, 1)
    a.bind("m", "1", "u")
    a.observe_request(200, 0.001)
    a.bind("m", "2", "u")
    text = a.render().decode()
    assert 'version="1"' not in text.split("model_server_model_info")[0]
    assert 'model_server_request_duration_seconds_count{model="m",version="2"} 0.0' in text


def test_ready_only_when_every_worker_is(tmp_path: Path) -> None:
    a, b = shared(tmp_path)
    a.set_ready(True)
    assert not a.ready and "model_server_ready 0.0" in a.render().decode()
    b.set_ready(True)
    assert a.ready and b.ready and "model_server_ready 1.0" in b.render().decode()
    b.set_ready(False)  # draining
    assert not a.ready


def test_readyz_waits_for_the_other_workers(tmp_path: Path, sklearn_onnx: Path) -> None:
    mine, other = shared(tmp_path)

    async def scenario(client: httpx.AsyncClient) -> None:
        resp = await client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["status"] == "waiting_for_workers"
        other.set_ready(True)
        assert (await client.get("/readyz")).status_code == 200

    run_app(ServeConfig(model_uri=str(sklearn_onnx)), scenario, metrics=mine)


def test_a_buffer_too_small_for_the_slot_is_refused() -> None:
    from models.serve.errors import ConfigInvalid

    with pytest.raises(ConfigInvalid, match="cannot hold slot 1 of 2"):
        Tally(bytearray(10), 2, 1)


@pytest.mark.parametrize(("cpu_max", "affinity_cap", "expected"), [
    ("max 100000\n", 8, 8),
    ("100000 100000\n", 8, 1),
    ("150000 100000\n", 8, 2),
    ("50000 100000\n", 8, 1),
    (None, 8, 8),
    ("garbage", 8, 8),
])
def test_usable_cpus_honours_the_cgroup_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               cpu_max: str | None, affinity_cap: int,
                                               expected: int) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(affinity_cap)))
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert usable_cpus(path) == expected


@pytest.mark.parametrize(("workers", "cpus", "expected"), [(0, 1, 1), (0, 2, 2), (0, 16, 2),
                                                          (3, 1, 3), (1, 16, 1)])
def test_worker_count_auto_is_one_per_cpu_up_to_two(workers: int, cpus: int,
                                                    expected: int) -> None:
    assert worker_count(ServeConfig(model_uri="m.onnx", workers=workers), cpus) == expected
