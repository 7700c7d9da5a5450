"""N services released at once on 4 workers (Prefect on Postgres): outcomes, lost or duplicated
deploys, wall time, and the time each extra service adds.

Run by hand (a temporary SUITE_HOME and free ports; ~2 min per service on 2 cores):
    .venv/bin/python bench/services_concurrent.py 1 2 4
For each N: N copies of examples/hello (hello-1..N, each its own git repository and Host) are
onboarded and given a first release; then all N release a new commit at once through the
`release` deployment on the work pool. Expected: every one promoted, exactly one `release.start`
and one outcome per run in the audit trail, each service's stable replicas at the new commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite import audit
from suite.cli.demo import run_deployment
from suite.platform import manager
from suite.services import onboard
from suite.settings import PROJECT_DIR, Settings
from tasks.targets.state import FileStore
from tests.conftest import free_ports

GIT = ["git", "-c", "user.email=bench@example.org", "-c", "user.name=bench"]


def team_repo(root: Path, name: str) -> tuple[Path, str]:
    work = root / name
    shutil.copytree(PROJECT_DIR / "examples" / "hello", work,
                    ignore=shutil.ignore_patterns("__pycache__"))
    manifest = work / "suite.yaml"
    text = manifest.read_text().replace("service: hello", f"service: {name}")
    manifest.write_text(text.replace("hello.localhost", f"{name}.localhost"))
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
    subprocess.run([*GIT, "commit", "-qm", "v1"], cwd=work, check=True)
    return work, f"file://{work}"


#: synthetic requests per second through each service's route during its canary (the demo's
#: and the e2e tests' rate: at 10 req/s a 20 % canary gets too few requests per analysis
#: interval for the http template's mustHaveData metrics)
LOAD_RPS = 20.0


def release_all(settings: Settings, names: list[str]) -> tuple[float, list[str], list[str]]:
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        runs = [pool.submit(run_deployment, settings, "release/release",
                            {"service": n, "synthetic_load_rps": LOAD_RPS,
                             "triggered_by": "bench"}, lambda _: None) for n in names]
        results = [r.result() for r in runs]
    return (time.monotonic() - began, [r.outcome for r in results],
            [f"{n}: {r.detail}" for n, r in zip(names, results, strict=True)])


def one(n: int) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix=f"bench-svc{n}-"))
    home.chmod(0o755)  # the postgres user must reach its data directory below it
    settings = Settings(home=home, ports=free_ports(), workers=4, database="postgres")
    try:
        manager.up(settings)
        from suite import engine
        from suite.deployments import deploy
        from tasks.images import base

        deploy(settings)
        base.ensure_base(settings, engine.client(settings))
        names = [f"hello-{i}" for i in range(1, n + 1)]
        works = {}
        for name in names:
            works[name], url = team_repo(home / "repos", name)
            onboard.add(settings, url, "main")
        first_s, first, _ = release_all(settings, names)
        for name in names:
            subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", "v2"], cwd=works[name],
                           check=True)
        seen = len(audit.trail(settings).records())
        wall, outcomes, details = release_all(settings, names)
        records = audit.trail(settings).records()[seen:]
        starts = [r for r in records if r.action == "release.start"]
        ends = [r for r in records if r.action in ("release.promoted", "release.rolled_back",
                                                  "release.failed")]
        heads = {name: subprocess.run(["git", "rev-parse", "HEAD"], cwd=works[name],
                                      check=True, capture_output=True, text=True
                                      ).stdout.strip()[:12] for name in names}
        store = FileStore(settings.dir("targets", "local"))
        stable_ok = sum(1 for name in names if (st := store.load(name).stable) is not None
                        and st.workload.version == heads[name] and st.instances)
        row = {"n": n, "first_s": round(first_s), "wall_s": round(wall),
                "first": first, "outcomes": outcomes, "starts": len(starts),
                "ends": len(ends), "stable_at_new_commit": stable_ok}
        if any(o != "promoted" for o in [*first, *outcomes]):
            raise RuntimeError(f"not every release was promoted: {row}; {details}")
    except BaseException:
        print(f"kept {home} for a look (`SUITE_HOME={home} suite logs worker-1`)",
              file=sys.stderr)
        manager.down(settings)
        raise
    manager.down(settings)
    shutil.rmtree(home, ignore_errors=True)
    return row


def main() -> None:
    rows = [one(int(arg)) for arg in (sys.argv[1:] or ["1", "2"])]
    print("| N | first releases (s) | N at once (s) | outcomes | release.start / outcome records"
          " | stable at new commit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['first_s']} | {r['wall_s']} | {r['outcomes']} | "
              f"{r['starts']} / {r['ends']} | {r['stable_at_new_commit']} |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        extra = (int(b["wall_s"]) - int(a["wall_s"])) / max(1, int(b["n"]) - int(a["n"]))
        print(f"each extra service adds ~{extra:.0f} s to the release of all at once")


if __name__ == "__main__":
    main()
