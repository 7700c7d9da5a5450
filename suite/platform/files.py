"""Small file helpers: atomic writes so a crash never leaves a half-written state file, and one
translation of a failed write (disk full, I/O error) into an error naming the path and the free
space, used by every writer of state (target state, audit trail, webhook replay log)."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from suite.errors import StorageError

#: errno -> what it means for the user and how to fix it
_ADVICE = {
    errno.ENOSPC: "the file system is full: free space there (or move SUITE_HOME) and retry",
    errno.EDQUOT: "the disk quota is exhausted: free space there (or move SUITE_HOME) and retry",
    errno.EIO: "the disk or file system reported an I/O error: check `dmesg` and the disk "
               "before retrying",
    errno.EROFS: "the file system is mounted read-only: remount it read-write (or move "
                 "SUITE_HOME) and retry",
}


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def free_space(path: Path) -> str:
    """``"12.0 KiB free of 1.0 MiB"`` for the file system holding ``path`` (or its nearest
    existing parent); ``"free space unknown"`` when even that cannot be read."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return "free space unknown"
    return f"{_human(usage.free)} free of {_human(usage.total)}"


def storage_error(path: Path, exc: OSError, doing: str = "writing") -> StorageError:
    """The error to raise (``from exc``) when ``doing`` ``path`` failed with ``exc``."""
    code = exc.errno or 0
    name = errno.errorcode.get(code, "error")
    advice = _ADVICE.get(code, "check the path's permissions and file system")
    return StorageError(
        code, f"{doing} {path} failed: {exc.strerror or exc} ({name}); {free_space(path)} on "
              f"the file system holding {path.parent}; {advice}",
    )


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` all at once: on any failure the old content is intact and
    no temporary file is left behind; a failed write raises :class:`StorageError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise storage_error(path, exc) from exc
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(path, exc) from exc
        raise


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an advisory lock on the file ``lock`` (created if missing): writers of the same files
    in other processes (two releases on two workers) take turns instead of interleaving."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a")  # closed below, after the lock is released
    except OSError as exc:
        raise storage_error(lock, exc, "locking") from exc
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
