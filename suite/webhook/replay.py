"""Delivery ids already seen, kept on disk so a replay is refused even after a restart.

A log that cannot be read or written (disk full, I/O error, garbled) is an error, never an empty
log: treating it as empty would accept every replay and then overwrite the ids it held.
"""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path

from suite.errors import StorageError
from suite.platform.files import atomic_write, storage_error

KEEP = 10_000


class DeliveryLog:
    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep

    def _read(self) -> dict[str, float]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise storage_error(self.path, exc, "reading") from exc
        try:
            seen = json.loads(text)
        except ValueError as exc:
            raise StorageError(
                f"the webhook's replay log {self.path} is not valid JSON ({exc}); move it "
                f"aside to start a new one (replays of the deliveries it held are then accepted)"
            ) from exc
        if not isinstance(seen, dict):
            raise StorageError(f"the webhook's replay log {self.path} holds "
                               f"{type(seen).__name__}, not an object of delivery ids; move it "
                               f"aside to start a new one")
        return seen

    def _update(self, delivery: str, add: bool) -> bool:
        lock_path = self.path.with_suffix(".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(lock_path, "a")  # closed below
        except OSError as exc:
            raise storage_error(lock_path, exc) from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            seen = self._read()
            if add and delivery in seen:
                return False
            if add:
                seen[delivery] = time.time()
            else:
                seen.pop(delivery, None)
            if len(seen) > self.keep:
                seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-self.keep:])
            atomic_write(self.path, json.dumps(seen), mode=0o600)
        return True

    def release(self, delivery: str) -> None:
        """Forget ``delivery`` (its release could not be started, so a retry must be allowed)."""
        self._update(delivery, add=False)

    def claim(self, delivery: str) -> bool:
        """Record ``delivery``; False when it was seen before (a replay). Raises
        :class:`StorageError` when the log cannot be read or written."""
        return self._update(delivery, add=True)
