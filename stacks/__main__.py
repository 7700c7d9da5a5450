"""Entry point of the Pulumi project (``main: stacks/`` in Pulumi.yaml).

The CLI runs this directory as a script, which puts ``stacks/`` itself first on ``sys.path``;
``stacks/kubernetes.py`` would then shadow any top-level ``kubernetes`` package. The directory
is swapped for the repository root so the program imports as the ``stacks`` package.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from stacks.config import PulumiReader  # noqa: E402
from stacks.dispatch import run  # noqa: E402

run(PulumiReader())
