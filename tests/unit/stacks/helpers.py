"""Shared pieces of the stack tests: base config, running a program under the mocks, tag checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policies.crossguard.rules import dig
from policies.crossguard.tagging import REQUIRED_TAG_KEYS, tag_path
from stacks import mocks
from stacks.config import DictReader
from stacks.tags import RequiredTags, load_tags

BASE: dict[str, Any] = {
    "owner": "ml-platform",
    "costCenter": "cc-4711",
    "dataClassification": "confidential",
    "environment": "test",
}
DIGEST = "sha256:" + "ab" * 32
MANIFESTS = Path(__file__).resolve().parent / "manifests"
#: the model server's manifest (a stand-in for the repository root's suite.yaml)
MODEL_SERVER = str(MANIFESTS / "model-server.yaml")
#: a plain HTTP service with Vault secrets and no model
HTTPBIN = str(MANIFESTS / "httpbin.yaml")


def reader(**values: Any) -> DictReader:
    return DictReader({**BASE, **values})


def tags() -> RequiredTags:
    return load_tags(reader())


def run(program: Callable[[], Any]) -> tuple[mocks.Recorder, list[mocks.Registered]]:
    """A fresh recorder (re-installed: every test module sets its own) and what was registered."""
    recorder = mocks.install()
    return recorder, mocks.run(recorder, program)


def count(resources: list[mocks.Registered]) -> dict[str, int]:
    found: dict[str, int] = {}
    for resource in resources:
        found[resource.type] = found.get(resource.type, 0) + 1
    return found


def untagged(resources: list[mocks.Registered]) -> list[str]:
    """URNs of taggable resources missing a required tag (or with a wrong value)."""
    bad = []
    for resource in resources:
        path = tag_path(resource.type, resource.inputs)
        if path is None:
            continue
        found = dig(resource.inputs, *path)
        expected = {"owner": "ml-platform", "cost-center": "cc-4711",
                    "data-classification": "confidential"}
        if not isinstance(found, Mapping) or any(found.get(k) != expected[k]
                                                 for k in REQUIRED_TAG_KEYS):
            bad.append(resource.urn)
    return bad
