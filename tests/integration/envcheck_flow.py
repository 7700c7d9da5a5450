"""A flow that writes the names of its environment to a file: what a worker's flow run sees."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow


@flow(name="envcheck")
def envcheck(out: str) -> None:
    Path(out).write_text(json.dumps(sorted(os.environ)))
