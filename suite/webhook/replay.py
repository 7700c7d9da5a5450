"""Delivery ids already seen, kept on disk so a replay is refused even after a restart."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path

from suite.platform.files import atomic_write

KEEP = 10_000


class DeliveryLog:
    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep

    def _update(self, delivery: str, add: bool) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                seen: dict[str, float] = json.loads(self.path.read_text())
            except (OSError, ValueError):
                seen = {}
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
        """Record ``delivery``; False when it was seen before (a replay)."""
        return self._update(delivery, add=True)
