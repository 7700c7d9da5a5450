"""The model gate's thresholds (``policies/model.yaml``), loaded into a validated value object.

Every problem names its key, the value seen and what is expected, e.g.
``policies/model.yaml: quality.min_accuracy is 1.5 (expected a number in [0, 1])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.files import read_yaml
from suite.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("model.yaml")

#: key -> (lowest, highest) allowed value
_SCHEMA: dict[str, dict[str, tuple[float, float]]] = {
    "parity": {"max_abs_diff": (0.0, math.inf)},
    "quality": {"min_accuracy": (0.0, 1.0), "max_drop_vs_champion": (0.0, 1.0)},
}


@dataclass(frozen=True)
class ModelPolicy:
    parity_max_abs_diff: float = 1e-4
    min_accuracy: float = 0.9
    max_drop_vs_champion: float = 0.01
    source: str = "defaults"


def _number(where: str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}: {key} is {value!r} (expected a number)")
    if not low <= value <= high:
        span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise ConfigError(f"{where}: {key} is {value!r} (expected a number in {span})")
    return float(value)


def parse(data: Any, where: str = "model policy") -> ModelPolicy:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level is {type(data).__name__} "
                          f"(expected a mapping with keys {', '.join(_SCHEMA)})")
    values: dict[str, float] = {}
    for section, section_value in data.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{where}: unknown key {section!r} "
                              f"(expected one of {', '.join(_SCHEMA)})")
        if not isinstance(section_value, dict):
            raise ConfigError(f"{where}: {section} is {section_value!r} (expected a mapping)")
        for key, value in section_value.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(f"{where}: unknown key '{section}.{key}' "
                                  f"(expected one of {', '.join(_SCHEMA[section])})")
            low, high = _SCHEMA[section][key]
            values[f"{section}.{key}"] = _number(where, f"{section}.{key}", value, low, high)
    missing = [f"{s}.{k}" for s, keys in _SCHEMA.items() for k in keys
               if f"{s}.{k}" not in values]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return ModelPolicy(
        parity_max_abs_diff=values["parity.max_abs_diff"],
        min_accuracy=values["quality.min_accuracy"],
        max_drop_vs_champion=values["quality.max_drop_vs_champion"],
        source=where,
    )


def load(path: Path | str | None = None) -> ModelPolicy:
    file = Path(path) if path else DEFAULT_PATH
    data = read_yaml(file, "model policy", f" (expected a YAML file like {DEFAULT_PATH})")
    return parse(data, str(file))
