"""Leftovers of the container engine: containers whose conmon is gone and the mounts they hold.

Podman unmounts a container's root filesystem (``storage/overlay/<layer>/merged``), its
``/dev/shm`` (``storage/overlay-containers/<id>/userdata/shm``) and its network namespace in
``container cleanup``, which conmon runs when the container exits. That step is skipped when
the container outlives the engine: ``podman system service`` exits on `suite down` but conmon
runs in a session of its own, so every container still running (anything but a release
replica, or everything when a test session is killed before its teardown) keeps running with
its mounts; when it is killed later together with its conmon, or its SUITE_HOME is deleted
first, nobody unmounts and the directory can no longer be removed ("Device or resource busy").
Podman 4.3 cannot recover such a container by itself: without conmon's exit file it stays
"running", and ``podman stop`` leaves it "stopping" for good (containers/podman#19629).

The reaper does what conmon would have done: for a container whose conmon is gone it kills
what is left through the OCI runtime and writes the exit file conmon writes, then
``podman container cleanup`` unmounts storage and shm and removes the network namespace, and
the container can be started again (release replicas are, by the engine's ``after_start``).
Mounts podman no longer knows about are unmounted by path as a last resort. Only paths inside
the engine's own directory are ever touched, and never those of a container whose conmon
still runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: runs the engine's podman with these arguments (its own flags and configuration) and a timeout
PodmanRun = Callable[[Sequence[str], float], subprocess.CompletedProcess[str]]

#: states in which podman still waits for conmon to report the exit
WAITING_FOR_EXIT = frozenset({"running", "stopping", "paused"})
#: what conmon writes for a container killed by SIGKILL (128 + 9)
KILLED_EXIT_CODE = "137"
MOUNTS_FILE = Path("/proc/mounts")


def _unescape(field_text: str) -> str:
    r"""``/proc/mounts`` writes space, tab, newline and backslash as ``\040`` and the like."""
    out, i = [], 0
    while i < len(field_text):
        chunk = field_text[i:i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path, mounts_text: str) -> list[Path]:
    """Mount points strictly inside ``root`` in a ``/proc/mounts`` text, deepest first."""
    found: list[Path] = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        point = Path(_unescape(parts[1]))
        if point != root and point.is_relative_to(root) and point not in found:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def read_mounts(root: Path) -> list[Path]:
    try:
        return mounts_under(root, MOUNTS_FILE.read_text())
    except OSError:
        return []


def live_conmons(storage: Path) -> dict[str, int]:
    """Container id -> pid of each running conmon whose bundle lies under ``storage``."""
    bundles = storage.resolve() / "overlay-containers"
    live: dict[str, int] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if proc.info.get("name") != "conmon" or "-b" not in argv[:-1]:
            continue
        # <storage>/overlay-containers/<id>/userdata, as podman named it (maybe via a symlink)
        bundle = Path(argv[argv.index("-b") + 1]).resolve()
        try:
            if bundle.parent.parent == bundles and proc.status() != psutil.STATUS_ZOMBIE:
                live[bundle.parent.name] = proc.pid
        except psutil.Error:
            continue
    return live


def container_layers(storage: Path) -> dict[str, str] | None:
    """Container id -> id of its read-write layer (``overlay/<layer>/merged`` is its root)."""
    try:
        records = json.loads((storage / "overlay-containers" / "containers.json").read_text())
        return {str(r["id"]): str(r["layer"]) for r in records}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def holders(storage: Path, mounts: Iterable[Path]) -> set[str]:
    """Ids of the containers that hold one of ``mounts`` (root filesystem or shm)."""
    by_layer = {layer: cid for cid, layer in (container_layers(storage) or {}).items()}
    found: set[str] = set()
    for point in mounts:
        rel = point.relative_to(storage).parts if point.is_relative_to(storage) else ()
        if len(rel) >= 3 and rel[0] == "overlay-containers":
            found.add(rel[1])
        elif len(rel) == 3 and rel[0] == "overlay" and rel[2] == "merged" and rel[1] in by_layer:
            found.add(by_layer[rel[1]])
    return found


def protected_paths(storage: Path, live: Iterable[str]) -> list[Path]:
    """What a running container still uses: its bundle and its root filesystem mount."""
    live = set(live)
    if not live:
        return []
    layers = container_layers(storage)
    if layers is None or not live <= layers.keys():
        return [storage]  # cannot tell which mount is whose: touch none
    return [storage / "overlay-containers" / cid for cid in live] + [
        storage / "overlay" / layers[cid] / "merged" for cid in live]


@dataclass
class Reaper:
    """Cleans one engine directory; every step is best effort and says what it did."""

    root: Path
    podman: PodmanRun
    runc: str
    umount: str | None
    done: list[str] = field(default_factory=list)

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def exits(self) -> Path:
        return self.root / "tmp" / "exits"  # conmon's --exit-dir: containers.conf tmp_dir/exits

    def _podman(self, args: Sequence[str], timeout: float = 60.0) -> str | None:
        try:
            result = self.podman(args, timeout)
        except (OSError, subprocess.SubprocessError) as exc:
            self.done.append(f"podman {' '.join(args)} failed: {exc}")
            return None
        if result.returncode != 0:
            self.done.append(f"podman {' '.join(args)}: {result.stderr.strip()[-300:]}")
        return result.stdout

    def containers(self) -> list[tuple[str, str]]:
        """(id, state) of every container the engine's database knows."""
        out = self._podman(["ps", "--all", "--format", "json"])
        try:
            return [(str(c["Id"]), str(c["State"])) for c in json.loads(out or "[]")]
        except (ValueError, TypeError, KeyError):
            return []

    def finish_orphans(self, containers: list[tuple[str, str]], live: set[str]) -> list[str]:
        """Kill what is left of each container whose conmon is gone; write conmon's exit file."""
        orphans = [cid for cid, state in containers if state in WAITING_FOR_EXIT
                   and cid not in live]
        for cid in orphans:
            try:  # conmon may have died alone: its container must not run on unobserved
                subprocess.run([self.runc, "kill", cid, "KILL"], capture_output=True,
                               timeout=30, check=False)
            except (OSError, subprocess.SubprocessError):
                pass
            exit_file = self.exits / cid
            if not exit_file.exists():
                self.exits.mkdir(parents=True, exist_ok=True)
                exit_file.write_text(KILLED_EXIT_CODE)
        if orphans:
            self.done.append(f"finished {len(orphans)} container(s) whose conmon was gone: "
                             f"{', '.join(c[:12] for c in orphans)}")
        return orphans

    def unmount_leftovers(self, live: set[str]) -> None:
        """Unmount by path what podman left mounted, except what a running container uses."""
        keep = protected_paths(self.storage, live)
        left = [m for m in read_mounts(self.root)
                if not any(m == k or m.is_relative_to(k) for k in keep)]
        if not left or self.umount is None:
            return
        for point in left:
            for flags in ([], ["--lazy"]):  # lazy: a busy mount is detached, the dir can go
                try:
                    result = subprocess.run([self.umount, *flags, str(point)],
                                            capture_output=True, timeout=30, check=False)
                except (OSError, subprocess.SubprocessError):
                    break
                if result.returncode == 0:
                    break
        gone = [m for m in left if m not in read_mounts(self.root)]
        self.done.append(f"unmounted {len(gone)} leftover mount(s) under {self.root}"
                         + (f"; still mounted: {[str(m) for m in left if m not in gone]}"
                            if len(gone) < len(left) else ""))

    def reap(self, *, stop_running: bool) -> list[str]:
        """Stop (if asked) and clean up the engine's containers; unmount what remains.

        ``stop_running=False`` is for a start after a crash: containers whose conmon still
        runs keep running (the new service adopts them); only the others are cleaned.
        """
        has_db = (self.storage / "libpod").exists()
        if not has_db and not read_mounts(self.root):
            return self.done
        live = set(live_conmons(self.storage))
        containers = self.containers() if has_db else []
        orphans = self.finish_orphans(containers, live)
        if stop_running and live:
            self._podman(["stop", "--all", "--time", "5"], timeout=120)
            self.done.append(f"stopped {len(live)} container(s) still running without the "
                             f"service: {', '.join(sorted(c[:12] for c in live))}")
            live = set(live_conmons(self.storage))
        known = {cid for cid, _ in containers}
        idle = sorted((set(orphans) | holders(self.storage, read_mounts(self.root)))
                      & known - live)
        if idle:
            self._podman(["container", "cleanup", *idle], timeout=120)
            self.done.append(f"cleaned up {len(idle)} stopped container(s) that held mounts")
        if stop_running and has_db and read_mounts(self.root):
            self._podman(["unmount", "--all"])
        self.unmount_leftovers(live)
        return self.done
