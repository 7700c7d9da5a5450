"""Typed stack configuration, validated before any resource is declared.

Values come from ``Pulumi.<stack>.yaml`` (namespace ``suite``) through a :class:`ConfigReader`,
so tests can hand in a dict. Every error names the full key (``suite:nodePools[1].maxCount``),
the value seen and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from suite.errors import ConfigError

NAMESPACE = "suite"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


class Cloud(StrEnum):
    AWS = "aws"
    AZURE = "azure"
    GCP = "gcp"
    KUBERNETES = "kubernetes"


class ConfigReader(Protocol):
    namespace: str

    def get(self, key: str) -> Any:
        """The raw value (str, or structured data for objects/lists), or None when unset."""


class DictReader:
    """Config from a plain mapping (tests, or values gathered elsewhere)."""

    def __init__(self, values: Mapping[str, Any], namespace: str = NAMESPACE) -> None:
        self.values = dict(values)
        self.namespace = namespace

    def get(self, key: str) -> Any:
        return self.values.get(key)


class PulumiReader:
    """Config of the running Pulumi program; structured values arrive as JSON text."""

    def __init__(self, namespace: str = NAMESPACE) -> None:
        import pulumi

        self.namespace = namespace
        self._config = pulumi.Config(namespace)

    def get(self, key: str) -> Any:
        raw = self._config.get(key)
        if raw is None:
            return None
        stripped = raw.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except ValueError as exc:
                raise ConfigError(f"{self.namespace}:{key} is not valid JSON: {exc}") from exc
        return raw


def full_key(reader: ConfigReader, key: str) -> str:
    return f"{reader.namespace}:{key}"


def get_str(reader: ConfigReader, key: str, default: str | None = None) -> str | None:
    value = reader.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str | int | float | bool):
        raise ConfigError(f"{full_key(reader, key)} is {value!r} (expected a string)")
    return str(value)


def require_str(reader: ConfigReader, key: str, example: str) -> str:
    value = get_str(reader, key)
    if value is None:
        raise ConfigError(
            f"{full_key(reader, key)} is not set (expected e.g. {example!r}); "
            f"set it with `pulumi config set {full_key(reader, key)} {example}`"
        )
    return value


def to_int(value: Any, where: str, minimum: int, maximum: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} is {value!r} (expected an integer)") from exc
    if not minimum <= number <= maximum:
        raise ConfigError(f"{where} is {number} (expected {minimum}..{maximum})")
    return number


def get_int(reader: ConfigReader, key: str, default: int, minimum: int, maximum: int) -> int:
    value = reader.get(key)
    if value is None or value == "":
        return default
    return to_int(value, full_key(reader, key), minimum, maximum)


def get_bool(reader: ConfigReader, key: str, default: bool) -> bool:
    value = reader.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(f"{full_key(reader, key)} is {value!r} (expected true or false)")
    return text == "true"


def get_choice(reader: ConfigReader, key: str, choices: Sequence[str], default: str) -> str:
    value = get_str(reader, key, default) or default
    if value not in choices:
        raise ConfigError(
            f"{full_key(reader, key)} is {value!r} (expected one of {', '.join(choices)})"
        )
    return value


def get_str_list(reader: ConfigReader, key: str) -> tuple[str, ...]:
    value = reader.get(key)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{full_key(reader, key)} is {value!r} (expected a list of strings)")
    return tuple(value)


def get_str_map(reader: ConfigReader, key: str) -> dict[str, str]:
    value = reader.get(key)
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{full_key(reader, key)} is {value!r} (expected an object)")
    return {str(k): str(v) for k, v in value.items()}


def get_cloud(reader: ConfigReader) -> Cloud:
    value = require_str(reader, "cloud", "kubernetes")
    try:
        return Cloud(value)
    except ValueError as exc:
        known = ", ".join(c.value for c in Cloud)
        raise ConfigError(
            f"{full_key(reader, 'cloud')} is {value!r} (expected one of {known})"
        ) from exc


def check_name(value: str, where: str) -> str:
    if not _NAME.match(value):
        raise ConfigError(
            f"{where} is {value!r} (expected 2-32 lowercase letters, digits or '-', "
            f"starting with a letter)"
        )
    return value


@dataclass(frozen=True)
class NodePool:
    """One node pool of a managed cluster; machine types are the cloud's own names."""

    name: str
    machine_type: str
    min_count: int = 1
    max_count: int = 3
    disk_size_gb: int = 100
    spot: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


_POOL_KEYS = {"name", "machineType", "minCount", "maxCount", "diskSizeGb", "spot", "labels"}


def parse_node_pool(raw: Any, where: str) -> NodePool:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} is {raw!r} (expected an object with name, machineType, ...)")
    unknown = sorted(set(raw) - _POOL_KEYS)
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys {unknown} (expected {', '.join(sorted(_POOL_KEYS))})"
        )
    for key in ("name", "machineType"):
        if not raw.get(key):
            raise ConfigError(f"{where}.{key} is not set")
    min_count = to_int(raw.get("minCount", 1), f"{where}.minCount", 0, 1000)
    max_count = to_int(raw.get("maxCount", max(min_count, 3)), f"{where}.maxCount", 1, 1000)
    if min_count > max_count:
        raise ConfigError(
            f"{where}.minCount is {min_count} but maxCount is {max_count} "
            f"(expected minCount <= maxCount)"
        )
    labels = raw.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ConfigError(f"{where}.labels is {labels!r} (expected an object)")
    spot = raw.get("spot", False)
    if not isinstance(spot, bool):
        raise ConfigError(f"{where}.spot is {spot!r} (expected true or false)")
    return NodePool(
        name=check_name(str(raw["name"]), f"{where}.name"),
        machine_type=str(raw["machineType"]),
        min_count=min_count,
        max_count=max_count,
        disk_size_gb=to_int(raw.get("diskSizeGb", 100), f"{where}.diskSizeGb", 20, 4096),
        spot=spot,
        labels={str(k): str(v) for k, v in labels.items()},
    )


def get_node_pools(reader: ConfigReader, default_machine_type: str) -> tuple[NodePool, ...]:
    """``suite:nodePools``: a list of pools; one default pool when unset."""
    key = full_key(reader, "nodePools")
    raw = reader.get("nodePools")
    if raw is None:
        return (NodePool(name="general", machine_type=default_machine_type),)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key} is {raw!r} (expected a non-empty list of node pools)")
    pools = tuple(parse_node_pool(item, f"{key}[{i}]") for i, item in enumerate(raw))
    names = [pool.name for pool in pools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{key} names {duplicates} more than once (expected unique names)")
    return pools
