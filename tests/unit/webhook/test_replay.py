"""The replay store: atomic claims in SQLite (fsync'd), shared by threads and processes, the former
JSON log imported once, and a store it cannot use is an error, never an empty store (which would
accept every replay)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from suite.errors import StorageError
from suite.webhook.replay import DeliveryLog


def test_claim_then_replay_then_release(tmp_path: Path):
    log = DeliveryLog(tmp_path / "deliveries.sqlite3")
    assert log.claim("github:1:svc")
    assert not log.claim("github:1:svc")
    log.release("github:1:svc")
    assert log.claim("github:1:svc")


def test_claims_survive_a_new_store_object_and_are_fsynced(tmp_path: Path):
    path = tmp_path / "deliveries.sqlite3"
    assert DeliveryLog(path).claim("github:1:svc")
    assert not DeliveryLog(path).claim("github:1:svc")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert path.stat().st_mode & 0o777 == 0o600


def test_many_threads_claiming_one_key_give_exactly_one_winner(tmp_path: Path):
    path = tmp_path / "deliveries.sqlite3"
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        log = DeliveryLog(path)  # as separate processes would: one store object each
        barrier.wait()
        wins.append(log.claim("gitea:7:svc"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_the_former_json_log_is_imported_once_so_its_replays_stay_refused(tmp_path: Path):
    legacy = tmp_path / "deliveries.json"
    legacy.write_text(json.dumps({"github:old:svc": 1.0}))
    log = DeliveryLog(tmp_path / "deliveries.sqlite3", legacy=legacy)
    assert not log.claim("github:old:svc")
    assert log.claim("github:new:svc")
    assert not legacy.exists() and (tmp_path / "deliveries.json.imported").exists()


def test_a_garbled_former_log_is_an_error_that_says_how_to_start_over(tmp_path: Path):
    legacy = tmp_path / "deliveries.json"
    legacy.write_text("[1, 2")
    with pytest.raises(StorageError, match=r"cannot be imported .*move it aside"):
        DeliveryLog(tmp_path / "deliveries.sqlite3", legacy=legacy).claim("github:1:svc")
    assert legacy.read_text() == "[1, 2"


def test_a_file_that_is_not_a_database_is_an_error_not_an_empty_store(tmp_path: Path):
    path = tmp_path / "deliveries.sqlite3"
    path.write_bytes(b"this is not sqlite, " * 100)
    with pytest.raises(StorageError, match=r"deliveries\.sqlite3 failed .*move it aside"):
        DeliveryLog(path).claim("github:1:svc")
