"""The engine service writes the configuration that works on this machine kind."""

from __future__ import annotations

from pathlib import Path

from suite.platform import credentials
from suite.platform.services import SERVICES, build
from suite.platform.services.podman import PodmanService
from suite.settings import Settings


def test_engine_is_registered_after_the_registry(tmp_path: Path) -> None:
    names = list(SERVICES)
    assert names.index("engine") == names.index("registry") + 1
    assert any(isinstance(s, PodmanService) for s in build(Settings(home=tmp_path)))


def test_engine_has_a_socket_url_and_no_port(tmp_path: Path) -> None:
    service = PodmanService(Settings(home=tmp_path))
    assert service.port is None
    assert service.url == f"unix://{tmp_path}/engine/podman.sock"
    assert service.argv()[-1] == service.url
    assert not service.healthy()


def test_prepare_writes_runc_cgroupfs_ulimits_overlay_and_insecure_registry(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, ports={"registry": 5123})
    credentials.prepare(settings)  # as `suite up` does first: the engine logs in as puller
    service = PodmanService(settings)
    service.prepare()
    env = service.env()
    containers = Path(env["CONTAINERS_CONF"]).read_text()
    assert 'runtime = "runc"' in containers and 'cgroup_manager = "cgroupfs"' in containers
    assert '"nofile=1024:1024", "nproc=1024:1024"' in containers
    storage = Path(env["CONTAINERS_STORAGE_CONF"]).read_text()
    assert 'driver = "overlay"' in storage and str(tmp_path / "engine" / "storage") in storage
    registries = Path(env["CONTAINERS_REGISTRIES_CONF"]).read_text()
    assert 'location = "127.0.0.1:5123"' in registries and "insecure = true" in registries
    assert "unqualified-search-registries = []" in registries
