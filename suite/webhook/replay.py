"""Replay claims (delivery ids, and repository+commit+service), in SQLite so a replay is refused
even after a restart and by several receivers at once.

One row per claim; the claim is an ``INSERT`` against the primary key, so two threads or
processes claiming the same key cannot both win. ``synchronous=FULL`` in WAL mode: a claim that
was answered is on disk (fsync) before the run starts. A store that cannot be opened, read or
written (disk full, I/O error, not a database) is a :class:`StorageError`, never an empty store:
treating it as empty would accept every replay.

The former store, a JSON object of ``key: time`` written whole (``deliveries.json``), is imported
once when the database is created, so the replays it held stay refused; it is then renamed
``*.imported``.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from suite.errors import StorageError

KEEP = 10_000
BUSY_TIMEOUT = 30.0  # seconds another writer may hold the database before a claim fails
SCHEMA = "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, at REAL NOT NULL)"


class DeliveryLog:
    def __init__(self, path: Path, keep: int = KEEP, legacy: Path | None = None) -> None:
        self.path = path
        self.keep = keep
        self.legacy = legacy
        self._ready = False

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection per call (safe across threads and processes), one transaction."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error("opening", exc) from exc
        try:
            try:
                if fresh:
                    self.path.chmod(0o600)
                if not self._ready:
                    self._prepare(conn)
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except (OSError, sqlite3.Error) as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._error("writing", exc) from exc
        finally:
            conn.close()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL, the table and the former log's import, once per store object, under a file lock:
        switching a fresh database to WAL from two connections at once fails with "database is
        locked" (SQLite does not wait for that lock)."""
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA)
            self._import_legacy(conn)
        self._ready = True

    def _error(self, doing: str, exc: BaseException) -> StorageError:
        return StorageError(
            f"{doing} the webhook's replay store {self.path} failed ({type(exc).__name__}: "
            f"{exc}); free disk space or fix its permissions. If it is not a database, move it "
            f"aside to start a new one (replays of the deliveries it held are then accepted)")

    def _import_legacy(self, conn: sqlite3.Connection) -> None:
        legacy = self.legacy
        if legacy is None or not legacy.is_file():
            return
        try:
            seen = json.loads(legacy.read_text())
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"the webhook's former replay log {legacy} cannot be imported into {self.path} "
                f"({exc}); move it aside to start without it (replays of the deliveries it held "
                f"are then accepted)") from exc
        if not isinstance(seen, dict):
            raise StorageError(f"the webhook's former replay log {legacy} holds "
                               f"{type(seen).__name__}, not an object of delivery ids; move it "
                               f"aside to start without it")
        rows = [(str(k), float(v) if isinstance(v, int | float) else time.time())
                for k, v in seen.items()]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR IGNORE INTO claims (key, at) VALUES (?, ?)", rows)
        conn.execute("COMMIT")
        legacy.rename(legacy.with_name(legacy.name + ".imported"))

    def claim(self, key: str) -> bool:
        """Record ``key``; False when it was claimed before (a replay). Raises
        :class:`StorageError` when the store cannot be read or written."""
        with self._db() as conn:
            try:
                cur = conn.execute("INSERT INTO claims (key, at) VALUES (?, ?)",
                                   (key, time.time()))
            except sqlite3.IntegrityError:
                return False
            if cur.lastrowid and cur.lastrowid % 100 == 0:
                conn.execute("DELETE FROM claims WHERE key NOT IN "
                             "(SELECT key FROM claims ORDER BY at DESC LIMIT ?)", (self.keep,))
        return True

    def release(self, key: str) -> None:
        """Forget ``key`` (its release could not be started, so a retry must be allowed)."""
        with self._db() as conn:
            conn.execute("DELETE FROM claims WHERE key = ?", (key,))
