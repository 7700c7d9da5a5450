"""JSON in and out, with ``orjson`` when it is installed (about 10x faster on these payloads;
optional: the stdlib is the fallback and the reference for what is accepted).

``orjson`` refuses ``NaN``/``Infinity`` literals and numbers that overflow a double; those
bodies are re-read by the stdlib, so the caller still learns the precise problem (non-finite
values) instead of a generic syntax error.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]

ACCELERATED = orjson is not None


def loads(body: bytes) -> Any:
    """Parse UTF-8 JSON like ``json.loads`` (raises ValueError, UnicodeDecodeError or
    RecursionError the same way). Only UTF-8 (RFC 8259 8.1): the stdlib would also guess
    UTF-16 and UTF-32 from the bytes, which orjson does not, so the two would disagree."""
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body.decode("utf-8"))


def dumps(payload: dict[str, Any]) -> bytes:
    """Serialise a response; numpy arrays are written as nested lists."""
    if orjson is not None:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(payload, default=_plain).encode()


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
