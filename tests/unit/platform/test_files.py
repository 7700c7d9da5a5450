"""atomic_write on a failing disk: the old content stays, no temporary file is left, and the
error names the path and the free space (and is still an OSError for older callers)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from suite.errors import StorageError, SuiteError
from suite.platform import files


def _fail_fsync(code: int):
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))
    return fsync


@pytest.mark.parametrize(("code", "advice"), [(errno.ENOSPC, "free space there"),
                                              (errno.EIO, "check `dmesg`")])
def test_a_failed_atomic_write_keeps_the_old_file_and_names_path_and_free_space(
        tmp_path: Path, monkeypatch, code, advice):
    path = tmp_path / "state" / "svc.json"
    files.atomic_write(path, '{"generation": 1}')
    monkeypatch.setattr(files.os, "fsync", _fail_fsync(code))
    with pytest.raises(StorageError) as info:
        files.atomic_write(path, '{"generation": 2}')
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, SuiteError) and err.errno == code
    text = str(err)
    assert f"writing {path} failed" in text and errno.errorcode[code] in text
    assert "free of" in text and advice in text
    assert path.read_text() == '{"generation": 1}'
    assert [p.name for p in path.parent.iterdir()] == ["svc.json"]  # no temporary file left


def test_free_space_reads_the_nearest_existing_parent(tmp_path: Path):
    assert "free of" in files.free_space(tmp_path / "not" / "yet" / "there")


def test_exclusive_makes_a_second_process_wait_until_the_first_releases(tmp_path: Path) -> None:
    """Two writers of one evidence directory (two services built to the same digest) take
    turns: a process that wants the lock gets it only once the holder has let go."""
    import select
    import subprocess
    import sys

    lock = tmp_path / "evidence" / ".lock"
    waiter = [sys.executable, "-c",
              "import sys; from pathlib import Path; from suite.platform.files import exclusive\n"
              "print('trying', flush=True)\n"
              "with exclusive(Path(sys.argv[1])):\n    print('got it', flush=True)", str(lock)]
    with files.exclusive(lock):
        proc = subprocess.Popen(waiter, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "trying"  # imported, about to ask for it
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        assert not ready, "the second process got the lock while the first held it"
    assert proc.stdout.readline().strip() == "got it"
    assert proc.wait(timeout=60) == 0


def test_exclusive_names_the_path_when_its_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match=str(blocker)):
        with files.exclusive(blocker / "sub" / ".lock"):
            pass
