"""The replay log never mistakes a disk it cannot read for an empty log (which would accept every
replay and overwrite the ids it held)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from suite.errors import StorageError
from suite.platform import files
from suite.webhook.replay import DeliveryLog


def test_claim_then_replay_then_release(tmp_path: Path):
    log = DeliveryLog(tmp_path / "deliveries.json")
    assert log.claim("github:1:svc")
    assert not log.claim("github:1:svc")
    log.release("github:1:svc")
    assert log.claim("github:1:svc")


def test_a_full_disk_is_an_error_naming_the_log_and_the_claims_stay(tmp_path: Path, monkeypatch):
    log = DeliveryLog(tmp_path / "deliveries.json")
    assert log.claim("github:1:svc")

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(StorageError, match=r"deliveries\.json failed: No space left .*free of"):
        log.claim("github:2:svc")
    monkeypatch.undo()
    assert not log.claim("github:1:svc")  # the old claim survived the failed write
    assert log.claim("github:2:svc")


def test_an_unreadable_log_is_an_error_not_an_empty_log(tmp_path: Path, monkeypatch):
    path = tmp_path / "deliveries.json"
    log = DeliveryLog(path)
    assert log.claim("github:1:svc")
    real = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if self == path:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(StorageError, match=r"reading .*deliveries\.json failed.*EIO"):
        log.claim("github:1:svc")
    monkeypatch.undo()
    assert not log.claim("github:1:svc")


def test_a_garbled_log_is_an_error_that_says_how_to_start_over(tmp_path: Path):
    path = tmp_path / "deliveries.json"
    path.write_text("[1, 2")
    with pytest.raises(StorageError, match=r"not valid JSON .*move it aside"):
        DeliveryLog(path).claim("github:1:svc")
    assert path.read_text() == "[1, 2"
