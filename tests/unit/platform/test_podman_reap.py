"""The engine reaper: which mounts are the engine's, whose they are, what it does to orphans."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from suite.platform.services import podman_reap
from suite.platform.services.podman_reap import (
    Reaper,
    holders,
    mounts_under,
    protected_paths,
)

ROOT = Path("/home/u/.suite/engine")
STORAGE = ROOT / "storage"
MOUNTS = f"""\
/dev/vda / ext4 rw 0 0
overlay {STORAGE}/overlay/L1/merged overlay rw,lowerdir=x 0 0
shm {STORAGE}/overlay-containers/C1/userdata/shm tmpfs rw 0 0
/dev/vda {STORAGE}/overlay ext4 rw 0 0
shm /home/u/.suite/engine-other/storage/overlay-containers/C9/userdata/shm tmpfs rw 0 0
overlay /home/u/.suite/engine/storage/with\\040space/merged overlay rw 0 0
/dev/vda {ROOT} ext4 rw 0 0
"""


def test_mounts_under_keeps_only_paths_inside_the_engine_dir_deepest_first() -> None:
    assert mounts_under(ROOT, MOUNTS) == [
        STORAGE / "overlay-containers/C1/userdata/shm",
        STORAGE / "overlay/L1/merged",
        STORAGE / "with space/merged",
        STORAGE / "overlay",
    ]


def test_mounts_under_never_names_a_sibling_directory_or_the_root_itself() -> None:
    found = mounts_under(ROOT, MOUNTS)
    assert ROOT not in found
    assert not any("engine-other" in str(p) for p in found)


def _containers_json(storage: Path, records: list[dict[str, str]]) -> None:
    (storage / "overlay-containers").mkdir(parents=True)
    (storage / "overlay-containers" / "containers.json").write_text(json.dumps(records))


def test_holders_maps_shm_and_root_filesystem_mounts_to_container_ids(tmp_path: Path) -> None:
    _containers_json(tmp_path, [{"id": "C1", "layer": "L1"}, {"id": "C2", "layer": "L2"}])
    mounts = [tmp_path / "overlay-containers/C1/userdata/shm", tmp_path / "overlay/L2/merged",
              tmp_path / "overlay/L7/merged"]
    assert holders(tmp_path, mounts) == {"C1", "C2"}


def test_protected_paths_of_a_running_container_are_its_bundle_and_root(tmp_path: Path) -> None:
    _containers_json(tmp_path, [{"id": "C1", "layer": "L1"}])
    assert protected_paths(tmp_path, {"C1"}) == [tmp_path / "overlay-containers/C1",
                                                 tmp_path / "overlay/L1/merged"]
    assert protected_paths(tmp_path, set()) == []


@pytest.mark.parametrize("records", ["{not json", json.dumps([{"id": "C2", "layer": "L2"}])])
def test_protected_paths_cover_all_storage_when_ownership_is_unknown(
    tmp_path: Path, records: str
) -> None:
    (tmp_path / "overlay-containers").mkdir()
    (tmp_path / "overlay-containers" / "containers.json").write_text(records)
    assert protected_paths(tmp_path, {"C1"}) == [tmp_path]


class FakePodman:
    def __init__(self, containers: list[dict[str, str]]) -> None:
        self.containers = containers
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        out = json.dumps(self.containers) if args[0] == "ps" else ""
        return subprocess.CompletedProcess(list(args), 0, out, "")


@pytest.fixture
def engine_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "storage" / "libpod").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    monkeypatch.setattr(podman_reap, "MOUNTS_FILE", mounts)
    monkeypatch.setattr(podman_reap, "live_conmons", lambda storage: {"LIVE": 1})
    return tmp_path


def test_orphans_get_conmons_exit_file_and_a_cleanup_live_ones_are_left_alone(
    engine_dir: Path,
) -> None:
    podman = FakePodman([{"Id": "ORPHAN", "State": "running"},
                         {"Id": "STUCK", "State": "stopping"},
                         {"Id": "LIVE", "State": "running"},
                         {"Id": "DONE", "State": "exited"}])
    reaper = Reaper(engine_dir, podman, runc=shutil.which("true") or "true", umount=None)

    done = reaper.reap(stop_running=False)

    exits = engine_dir / "tmp" / "exits"
    assert sorted(p.name for p in exits.iterdir()) == ["ORPHAN", "STUCK"]
    assert (exits / "ORPHAN").read_text() == "137"
    assert podman.calls == [["ps", "--all", "--format", "json"],
                            ["container", "cleanup", "ORPHAN", "STUCK"]]
    assert "conmon was gone" in done[0]


def test_down_stops_what_still_runs_then_unmounts_nothing_more_when_clean(
    engine_dir: Path,
) -> None:
    podman = FakePodman([{"Id": "LIVE", "State": "running"}])
    reaper = Reaper(engine_dir, podman, runc="true", umount=None)

    reaper.reap(stop_running=True)

    assert ["stop", "--all", "--time", "5"] in podman.calls
    assert not (engine_dir / "tmp" / "exits").exists()


def test_a_home_without_an_engine_database_or_mounts_calls_no_podman(tmp_path: Path) -> None:
    podman = FakePodman([])
    assert Reaper(tmp_path / "engine", podman, runc="true", umount=None).reap(
        stop_running=True) == []
    assert podman.calls == []
