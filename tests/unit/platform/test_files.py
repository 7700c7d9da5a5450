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
