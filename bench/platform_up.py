"""Cold and warm `suite up` time, and the memory (RSS, process tree) of each service.

Run by hand: .venv/bin/python bench/platform_up.py  (uses a temporary SUITE_HOME and free ports)
cold = first start on empty state (Vault init, DB migrations); warm = `down` then `up` again.
"""

from __future__ import annotations

import platform as pyplatform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.platform import manager, process
from suite.settings import Settings
from tests.conftest import free_ports


def tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="suite-bench-"))
    settings = Settings(home=home, ports=free_ports(), workers=2)
    try:
        began = time.monotonic()
        manager.up(settings)
        cold = time.monotonic() - began
        time.sleep(5)  # let background services settle before measuring memory
        rss = {}
        for status in manager.status(settings):
            rec = process.read_record(settings.dir("run"), status.name)
            rss[status.name] = tree_rss(rec.pid) if rec else 0
        manager.down(settings)
        began = time.monotonic()
        manager.up(settings)
        warm = time.monotonic() - began
        began = time.monotonic()
        manager.up(settings)
        noop = time.monotonic() - began
    finally:
        manager.down(settings)
        shutil.rmtree(home, ignore_errors=True)
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    print(f"machine: {psutil.cpu_count()} cores, {cpu}, {pyplatform.python_version()}")
    print(f"cold up: {cold:.1f} s   warm up (after down): {warm:.1f} s   "
          f"up with everything running: {noop:.2f} s")
    print("RSS per service (process tree):")
    for name, value in rss.items():
        print(f"  {name:<11} {value / 2**20:7.0f} MiB")
    print(f"  {'total':<11} {sum(rss.values()) / 2**20:7.0f} MiB")


if __name__ == "__main__":
    main()
