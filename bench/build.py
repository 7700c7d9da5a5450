"""Cold vs warm build of the model-server image through the platform engine.

Starts its own registry + engine under a temporary home on free ports (nothing of a user's
platform is touched), ensures the base image (the rootfs tar is cached across runs), then:
  cold  = build with no layer cache (pip downloads and installs every dependency) + push
  warm  = rebuild after a code-only change (a source file edited) + push
  noop  = rebuild with nothing changed + push
and prints the times side by side with the cold/warm ratio.

    .venv/bin/python bench/build.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform as host
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from suite import engine as engine_mod
from suite.platform import manager
from suite.settings import DEFAULT_PORTS, Settings
from tasks import build
from tasks.images import base as base_image

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def source_tree(dest: Path) -> Path:
    """A git work tree holding a copy of models/ (so edits never touch the real one)."""
    shutil.copytree(REPO / "models", dest / "models",
                    ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "*.onnx.data"))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "-c", "user.name=bench", "-c", "user.email=b@b",
                    "commit", "-q", "--allow-empty", "-m", "bench"], check=True)
    return dest


def timed(settings: Settings, spec: build.BuildSpec, tag: str, nocache: bool = False) -> float:
    began = time.monotonic()
    build.build_image(settings, spec, tag=tag, nocache=nocache)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        home = Path(tmp) / "home"
        ports = {name: free_port() for name in DEFAULT_PORTS}
        settings = Settings(home=home, ports=ports, workers=0)
        manager.up(settings, only=["registry", "engine"])
        try:
            eng = engine_mod.client(settings)
            base_image.ensure_base(settings, eng)
            spec = build.BuildSpec(repo_root=source_tree(Path(tmp) / "src"))
            marker = spec.repo_root / "models" / "_bench_marker.py"
            cold, warm, noop = [], [], []
            for run in range(args.runs):
                cold.append(timed(settings, spec, f"cold{run}", nocache=True))
                marker.write_text(f"RUN = {run}\n")
                warm.append(timed(settings, spec, f"warm{run}"))
                noop.append(timed(settings, spec, f"noop{run}"))
            size = eng.images.get(f"{spec.repository(settings)}:warm0").attrs["Size"]
        finally:
            manager.down(settings)
    c, w, n = (statistics.median(x) for x in (cold, warm, noop))
    print(f"## Build ({date.today()}, {host.node()}: {host.machine()}, "
          f"{os.cpu_count()} cpu, podman engine)")
    print(f"runs={args.runs} (medians; build + push to the local registry)")
    print(f"| case | seconds |\n|---|---|\n| cold (no cache) | {c:.2f} |\n"
          f"| warm (code-only change) | {w:.2f} |\n| no change | {n:.2f} |")
    print(f"cold/warm ratio: {c / w:.1f}x; image size {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
