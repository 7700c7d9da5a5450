"""Time from `git push` to the canary verdict, split by stage, on a running platform.

Run by hand after `make demo` (which leaves hello stable and its bare repository with the
post-receive hook):
    .venv/bin/python bench/release_timing.py
It commits to the demo's hello work tree, pushes to hello's bare repository, and follows the
push-triggered release until its first canary analysis verdict and its end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite import audit, prefect_http
from suite.cli.demo import hello_repo
from suite.settings import load


def main() -> None:
    settings = load()
    work, _ = hello_repo(settings)
    seen = len(audit.trail(settings).records())
    subprocess.run(["git", "-C", str(work), "-c", "user.email=bench@example.org", "-c",
                    "user.name=bench", "commit", "-q", "--allow-empty", "-m", "bench"],
                   check=True)
    pushed = time.time()
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], check=True)
    verdict_at = None
    run_id = None
    deadline = time.time() + 900
    while time.time() < deadline:
        records = audit.trail(settings).records()[seen:]
        for rec in records:
            if rec.action == "canary.analysis" and verdict_at is None:
                verdict_at = datetime.fromisoformat(rec.time).timestamp()
            if rec.action.startswith("release.") and rec.action != "release.start":
                run_id = rec.subject
        if run_id:
            break
        time.sleep(2)
    if verdict_at is None:
        raise SystemExit("no canary verdict seen (is a stable release deployed? run make demo)")
    print(f"push -> first canary verdict: {verdict_at - pushed:.1f} s")
    arts = prefect_http.request(settings.prefect_api_url, "POST", "/artifacts/filter", json={
        "artifacts": {"key": {"any_": ["release-report"]}}, "sort": "CREATED_DESC",
        "limit": 1}).json()
    table = [ln for ln in arts[0]["data"].splitlines() if ln.startswith("| ")]
    print("\n".join(table[:20]))


if __name__ == "__main__":
    main()
