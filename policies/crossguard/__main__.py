"""Entry point run by the Pulumi CLI for ``--policy-pack policies/crossguard``.

The CLI runs this directory as a script, which puts it first on ``sys.path``; its module
``kubernetes.py`` would then shadow any top-level ``kubernetes`` package, so the directory is
swapped for the repository root before anything is imported.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_ROOT))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.crossguard.evaluate import load_enforcement  # noqa: E402
from policies.crossguard.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(load_enforcement()),
)
