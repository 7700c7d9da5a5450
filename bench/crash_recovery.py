"""Time from a crash in the middle of a canary release to 100 % of the traffic on stable.

Run by hand (a temporary SUITE_HOME and free ports; ~10 min on 2 cores):
    .venv/bin/python bench/crash_recovery.py [--write]
One service (``crashy``: examples/hello with 50 % to the canary, then an indefinite pause) is
released by the `release` deployment on the platform's workers; at the 50 % step each case
crashes it, and the time is measured from the kill (or the cancel request) until HAProxy's
runtime state routes nothing to a canary server (polled every 0.1 s). A load generator (20
req/s) runs through each case and its failed requests are counted.

Cases: ``kill -9`` of the flow-run process (its worker reports Crashed, the hook reconciles);
cancellation through the Prefect API (the on_cancellation hook); ``kill -9`` of the worker and
its flow run (no one reports: the zombie automation after 200 s without a heartbeat, then the
rollback automation); ``kill -9`` of every platform process, then `suite up` (measured from the
start of `suite up`: HAProxy comes back with the canary at weight 0, then `suite up` reconciles).
``--write`` puts the table into bench/RESULTS.md.
"""

from __future__ import annotations

import os
import platform as host
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.results import write_section
from suite.haproxy import RuntimeApi, backend_name
from suite.load import LoadGenerator, LoadReport
from suite.platform import credentials, manager
from suite.services import onboard
from suite.settings import PROJECT_DIR, Settings, child_env
from tasks.control import Active
from tests.conftest import free_ports, prefect_api
from tests.e2e import test_crash as crash
from tests.e2e.test_services import commit, team_repo

HEADING = "## Crash recovery: from the kill to 100 % stable"


def only_stable(settings: Settings) -> bool:
    try:
        servers = RuntimeApi(settings.dir("haproxy", "admin.sock"), timeout=1).servers(
            backend_name(crash.SERVICE))
    except Exception:  # HAProxy down: not yet
        return False
    return bool(servers) and all(s.name.startswith("stable-") or s.weight == 0
                                 for s in servers)


def measure(settings: Settings, crash_it: Callable[[], float]) -> float:
    """Seconds from the moment ``crash_it`` returns (a monotonic time) to only-stable."""
    at = crash_it()
    while not only_stable(settings):
        if time.monotonic() - at > 600:
            raise RuntimeError("still routing to the canary 600 s after the crash")
        time.sleep(0.1)
    return time.monotonic() - at


def case(settings: Settings, work: Path, n: int, name: str,
         crash_it: Callable[[Active], float]) -> dict[str, object]:
    run_id, _ = crash.start_release(settings, work, n)
    active = crash.canary_at_50(settings, run_id)
    traffic = LoadGenerator(f"{settings.url('haproxy')}/", 20, 1200, None,
                            host=crash.HOST).start()
    at: list[float] = []

    def crashed() -> float:
        at.append(crash_it(active))
        return at[0]

    seconds = measure(settings, crashed)
    crash.reconciled(settings, active.release, timeout=300)
    done = time.monotonic() - at[0]
    report: LoadReport = traffic.stop()
    print(f"{name}: {seconds:.1f} s to 100 % stable, reconciled after {done:.1f} s; "
          f"{report.summary()}", flush=True)
    return {"case": name, "seconds": seconds, "reconciled": done, "ok": report.ok,
            "failed": report.failed}


def kill_run(active: Active) -> float:
    os.kill(active.pid, signal.SIGKILL)
    return time.monotonic()


def cancel(settings: Settings) -> Callable[[Active], float]:
    def go(active: Active) -> float:
        prefect_api(settings.prefect_api_url, "POST", f"/flow_runs/{active.flow_run_id}/set_state",
                    json={"state": {"type": "CANCELLING", "name": "Cancelling"}})
        return time.monotonic()
    return go


def kill_worker(active: Active) -> float:
    worker = psutil.Process(active.pid).parent()
    if worker is not None:
        worker.kill()
    os.kill(active.pid, signal.SIGKILL)
    return time.monotonic()


def kill_everything(settings: Settings, ups: list[subprocess.Popen[bytes]]
                    ) -> Callable[[Active], float]:
    def go(active: Active) -> float:
        os.kill(active.pid, signal.SIGKILL)
        for svc in manager.status(settings):
            if svc.pid:
                crash._kill_tree(svc.pid)
        while any(s.running for s in manager.status(settings)):
            time.sleep(0.2)
        began = time.monotonic()
        ups.append(subprocess.Popen(
            [str(PROJECT_DIR / ".venv" / "bin" / "suite"), "up"], env=os.environ.copy(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return began
    return go


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    settings = Settings(home=home, ports=free_ports(), workers=2)
    os.environ.update(child_env(settings))
    os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_uri
    rows: list[dict[str, object]] = []
    try:
        manager.up(settings)
        # MLflow's user exists once the platform is up (its password is made by the service)
        os.environ.update(credentials.mlflow_env(settings))
        from suite import engine
        from suite.deployments import deploy, ensure_automations
        from tasks.images import base

        deploy(settings, force=True)
        ensure_automations(settings)
        base.ensure_base(settings, engine.client(settings))
        work, url = team_repo(home / "repos", crash.SERVICE, PROJECT_DIR / "examples" / "hello")
        crash.make_crashy(work)
        commit(work, "crashy")
        onboard.add(settings, url, "main")
        from suite import prefect_http

        with prefect_http.client_settings(settings.prefect_api_url):
            crash.first_stable(settings)
        rows.append(case(settings, work, 1, "kill -9 of the flow-run process", kill_run))
        rows.append(case(settings, work, 2, "cancellation through the API", cancel(settings)))
        rows.append(case(settings, work, 3, "kill -9 of the worker and its flow run",
                         kill_worker))
        manager.up(settings)  # the killed worker back
        ups: list[subprocess.Popen[bytes]] = []
        rows.append(case(settings, work, 4, "kill -9 of every platform process, then suite up",
                         kill_everything(settings, ups)))
        for up in ups:
            up.wait(timeout=600)
    finally:
        manager.down(settings)
    load = os.getloadavg()
    lines = [HEADING, "",
             f"`bench/crash_recovery.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
             f"{host.node()} ({os.cpu_count()} cores, {host.machine()}), load average "
             f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; a canary at 50 % of 20 req/s.",
             "", "| crash | kill → 100 % stable (s) | → reconciled (s) | requests ok | failed |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {float(str(r['seconds'])):.1f} | "
              f"{float(str(r['reconciled'])):.1f} | {r['ok']} | {r['failed']} |" for r in rows]
    lines += ["", "100 % stable: HAProxy's runtime state routes nothing to a canary server "
              "(polled every 0.1 s); reconciled: the target state holds no canary and no "
              "release. The worker case waits for Prefect's zombie detection (no heartbeat for "
              "200 s, heartbeats every 30 s); the last is timed from the start of `suite up` "
              "(HAProxy starts with the unjudged canary at weight 0, then `suite up` "
              "reconciles).", ""]
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        write_section(PROJECT_DIR / "bench" / "RESULTS.md", HEADING, text)


if __name__ == "__main__":
    main()
