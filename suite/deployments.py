"""Register the deployments of ``prefect.yaml`` with the platform's Prefect server.

`suite up` does it when ``prefect.yaml`` changed since the last time (a stamp under the Prefect
state dir), so the UI always offers the current deployments, schedules and triggers.
"""

from __future__ import annotations

import hashlib
import subprocess

from suite.errors import ServiceUnavailable
from suite.platform.files import atomic_write
from suite.platform.service import find_binary
from suite.platform.services.prefect import PREFECT_HINT, prefect_env
from suite.settings import PROJECT_DIR, Settings

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


def _digest() -> str:
    return hashlib.sha256(PREFECT_YAML.read_bytes()).hexdigest()


def deploy(settings: Settings, force: bool = False) -> bool:
    """``prefect deploy --all``; False when nothing changed since the last deploy."""
    stamp = settings.dir("prefect", "deployed.sha256")
    digest = _digest()
    if not force and stamp.exists() and stamp.read_text().strip() == digest:
        return False
    env = prefect_env(settings)
    result = subprocess.run(
        [find_binary("prefect", PREFECT_HINT), "--no-prompt", "deploy", "--all",
         "--prefect-file", str(PREFECT_YAML)],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    if result.returncode != 0:
        raise ServiceUnavailable(
            f"prefect deploy --all failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-1500:]}"
        )
    atomic_write(stamp, digest)
    return True
