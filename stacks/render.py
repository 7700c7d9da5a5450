"""Render the Kubernetes program to plain YAML manifests, offline (no cluster, no Pulumi CLI).

The program runs under Pulumi mocks and each Kubernetes resource's inputs (which are the full
object: apiVersion, kind, metadata, spec) are written out, one file per object. The manifests
are what ``trivy config`` and the Kubernetes JSON schemas check in the tests, and a reviewer can
read them::

    python -m stacks.render Pulumi.dev-k8s.yaml out/
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from stacks.config import NAMESPACE, DictReader
from stacks.mocks import Recorder, Registered, install, run
from suite.errors import ConfigError


def normalize(value: Any) -> Any:
    """Mocks carry numbers as floats; Kubernetes wants integers where they are whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def manifests(resources: Sequence[Registered]) -> list[dict[str, Any]]:
    """The Kubernetes objects among ``resources``, in registration order."""
    found = []
    for resource in resources:
        if resource.type.startswith("kubernetes:") and "kind" in resource.inputs:
            found.append(normalize(resource.inputs))
    return found


def write(objects: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, obj in enumerate(objects):
        name = re.sub(r"[^a-z0-9-]", "-", str(obj.get("metadata", {}).get("name", "object")))
        path = out_dir / f"{i:02d}-{str(obj['kind']).lower()}-{name}.yaml"
        path.write_text(yaml.safe_dump(dict(obj), sort_keys=False))
        paths.append(path)
    return paths


def stack_config(path: Path) -> DictReader:
    """The ``suite:`` keys of a ``Pulumi.<stack>.yaml`` file (secure values are not supported)."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read stack file {path}: {exc}") from exc
    config = document.get("config") or {}
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: v for k, v in config.items() if str(k).startswith(prefix)}
    return DictReader(values)


def render(reader: DictReader, out_dir: Path, recorder: Recorder | None = None) -> list[Path]:
    recorder = recorder or install()
    from stacks.k8s_config import load_kubernetes
    from stacks.kubernetes import program
    from stacks.tags import load_tags

    cfg, tags = load_kubernetes(reader), load_tags(reader)
    return write(manifests(run(recorder, lambda: program(cfg, tags))), out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_file", type=Path, help="e.g. Pulumi.dev-k8s.yaml")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    for path in render(stack_config(args.stack_file), args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
