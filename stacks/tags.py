"""The required tags/labels every resource carries, in each provider's spelling.

Values are validated once against the strictest target (GCP labels and Kubernetes label values:
lowercase letters, digits, '-' and '_', at most 63 characters), so one stack config is valid on
every cloud.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policies.crossguard.tagging import DATA_CLASSIFICATIONS
from stacks.config import ConfigReader, full_key, get_str, require_str
from suite.errors import ConfigError

_VALUE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$")
PROJECT = "ultimate-suite"


@dataclass(frozen=True)
class RequiredTags:
    owner: str
    cost_center: str
    data_classification: str
    environment: str = "dev"

    def as_dict(self) -> dict[str, str]:
        """Tags for AWS and Azure, labels for GCP and Kubernetes (the keys are valid on all)."""
        return {
            "owner": self.owner,
            "cost-center": self.cost_center,
            "data-classification": self.data_classification,
            "environment": self.environment,
            "managed-by": "pulumi",
            "project": PROJECT,
        }

    def merged(self, extra: dict[str, str]) -> dict[str, str]:
        return {**extra, **self.as_dict()}


def _check(reader: ConfigReader, key: str, value: str) -> str:
    if not _VALUE.match(value):
        raise ConfigError(
            f"{full_key(reader, key)} is {value!r} (expected 1-63 lowercase letters, digits, '-' "
            f"or '_', starting and ending with a letter or digit, so it is a valid label on "
            f"every cloud)"
        )
    return value


def load_tags(reader: ConfigReader) -> RequiredTags:
    owner = _check(reader, "owner", require_str(reader, "owner", "ml-platform"))
    cost_center = _check(reader, "costCenter", require_str(reader, "costCenter", "cc-1234"))
    classification = require_str(reader, "dataClassification", "internal")
    if classification not in DATA_CLASSIFICATIONS:
        raise ConfigError(
            f"{full_key(reader, 'dataClassification')} is {classification!r} "
            f"(expected one of {', '.join(DATA_CLASSIFICATIONS)})"
        )
    environment = _check(reader, "environment", get_str(reader, "environment", "dev") or "dev")
    return RequiredTags(owner, cost_center, classification, environment)
