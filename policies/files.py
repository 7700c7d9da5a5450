"""Reading a policy file: one place for "cannot be read" and "not valid YAML" errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from suite.errors import ConfigError


def read_yaml(path: Path, what: str, hint: str = "") -> Any:
    """The parsed YAML of ``path``; ``what`` names the file in errors (e.g. "scan policy")."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc} — the file cannot be "
                          f"read{hint}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from exc
