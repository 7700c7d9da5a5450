"""Manifest values in Kubernetes' spelling: CPU and memory quantities, Secret names.

Pure functions: the manifest keeps CPUs as a float and memory in bytes; Kubernetes wants
``500m`` / ``2`` and ``256Mi``. A Vault path ``services/<service>/<rest>`` becomes the Secret
``<service>-<rest>`` (``/``, ``_`` and ``.`` as ``-``): the program names the Secret, it never
holds a value.
"""

from __future__ import annotations

import re

_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_UNITS = (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))
MAX_NAME = 253


def cpu_quantity(cpus: float) -> str:
    """``0.5`` -> ``500m``, ``2.0`` -> ``2``; never below ``1m``."""
    millicores = max(1, round(cpus * 1000))
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(memory_bytes: int) -> str:
    """The largest binary unit that divides the size exactly (``268435456`` -> ``256Mi``)."""
    for suffix, size in _UNITS:
        if memory_bytes % size == 0:
            return f"{memory_bytes // size}{suffix}"
    return str(memory_bytes)


def secret_name(service: str, path: str) -> str:
    """The Kubernetes Secret for Vault KV ``path`` (``services/httpbin/db`` -> ``httpbin-db``)."""
    rest = path.strip("/")
    prefix = f"services/{service}/"
    if rest == prefix.rstrip("/"):
        return service
    rest = rest[len(prefix):] if rest.startswith(prefix) else rest
    slug = _NOT_NAME.sub("-", rest.lower()).strip("-")
    return f"{service}-{slug}"[:MAX_NAME].rstrip("-") if slug else service
