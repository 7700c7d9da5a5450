"""A release is never left half-done: its flow-run process killed, its run cancelled, `suite
down` in the middle, or every platform process killed — each ends with all traffic on stable,
the canary gone, the run marked Crashed/Cancelled and ``release.reconciled`` in the audit trail,
while a load generator sees no failed request.

One service, ``crashy`` (``examples/hello`` under another name), with a lean strategy: 50 % to
the canary, then an indefinite pause, so every crash hits a canary that serves half of the
traffic. Releases run on the platform's workers (the deployment), as in production: the test
kills their processes, never its own. The worker-kill case waits for Prefect's zombie detection
(no heartbeat for 200 s), and the two that stop or kill the whole platform restart it: those
three are marked slow (`pytest -m slow tests/e2e/test_crash.py`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from suite import audit
from suite.deployments import ensure_automations
from suite.haproxy import RuntimeApi, backend_name
from suite.load import LoadGenerator, LoadReport
from suite.platform import manager
from suite.platform.services.prefect import WORK_POOL
from suite.services import onboard
from suite.settings import Settings, child_env
from tasks import plan as plan_mod
from tasks.build import build_task, for_service
from tasks.control import Active, Releases
from tasks.deploy import new_release_id, workload_for
from tasks.targets.base import Role
from tasks.targets.local import LocalTarget
from tests.conftest import REPO, prefect_api
from tests.e2e.test_services import commit, team_repo

#: a test here waits for a whole release (build, scan, test) before its crash
pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(1800)]
SERVICE = "crashy"
HOST = f"{SERVICE}.localhost"
STEPS = """strategy:
  canary:
    steps:
      - setWeight: 50
      - pause: {}
"""


def wait_for(what: str, check: Callable[[], Any], timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def make_crashy(work: Path) -> None:
    """hello's manifest in ``work`` becomes crashy's: another name and host, lean steps."""
    manifest = work / "suite.yaml"
    text = manifest.read_text().replace("service: hello", f"service: {SERVICE}")
    text = text.replace("host: hello.localhost", f"host: {HOST}")
    manifest.write_text(text.split("strategy:", 1)[0] + STEPS)


@pytest.fixture(scope="module")
def crashy(release_platform: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Path]:
    work, url = team_repo(tmp_path_factory.mktemp("crash"), SERVICE, REPO / "examples" / "hello")
    make_crashy(work)
    commit(work, "crashy: 50 % then wait")
    onboard.add(release_platform, url, "main")
    ensure_automations(release_platform)  # what `suite up` creates
    first_stable(release_platform)
    yield work
    LocalTarget(release_platform).teardown(SERVICE)
    onboard.remove(release_platform, SERVICE, 0)


def first_stable(settings: Settings) -> None:
    """crashy's stable, deployed as a first release deploys it (plan, build with its signed
    provenance, the stable replicas behind HAProxy) without that release's scan and test:
    what these tests judge is the crash of the next release, and each of those is a whole
    release through the `release` deployment. The build is the one every later release of
    crashy reuses (only its manifest changes), and hello's when test_services built it."""
    plan = plan_mod.plan(settings, SERVICE)
    image = build_task(for_service(plan.spec, Path(plan.source)), settings)
    wl = workload_for(plan.spec, release=new_release_id(plan.git_sha), git_sha=plan.git_sha,
                      image=image.pinned)
    LocalTarget(settings).reconcile(wl, Role.STABLE)
    assert stable_version(settings) == plan.git_sha[:12]


def stable_version(settings: Settings) -> str:
    state = LocalTarget(settings).state(SERVICE)
    assert state.stable is not None
    return state.stable.workload.version


def start_release(settings: Settings, work: Path, n: int) -> tuple[str, str]:
    """A new commit of crashy released by the `release` deployment: (run id, git sha)."""
    manifest = work / "suite.yaml"
    env = f"env: {{HELLO_GREETING: hello, HELLO_N: '{n}'}}"
    manifest.write_text(re.sub(r"(?m)^env: .*$", env, manifest.read_text()))
    sha = commit(work, f"canary {n}")
    dep = prefect_api(settings.prefect_api_url, "GET", "/deployments/name/release/release")
    assert dep.status_code == 200, dep.text
    resp = prefect_api(settings.prefect_api_url, "POST",
                       f"/deployments/{dep.json()['id']}/create_flow_run",
                       json={"parameters": {"service": SERVICE, "git_sha": sha},
                             "tags": ["crash-test"]})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"]), sha


def run_state(settings: Settings, run_id: str) -> tuple[str, str]:
    state = prefect_api(settings.prefect_api_url, "GET", f"/flow_runs/{run_id}").json()["state"]
    return state["type"], state["name"]


def canary_at_50(settings: Settings, run_id: str) -> Active:
    """The run's release, once its canary takes 50 % and the run waits at its pause."""
    releases = Releases(settings)

    def ready() -> Active | None:
        active = releases.active(SERVICE)
        if run_state(settings, run_id)[0] in ("FAILED", "CRASHED", "CANCELLED", "COMPLETED"):
            raise AssertionError(f"run {run_id} ended before 50 %: {run_state(settings, run_id)}"
                                 f" {active}")
        if active and active.flow_run_id == run_id and active.weight == 50 \
                and active.phase == "paused" and active.pid:
            return active
        return None

    try:
        active: Active = wait_for("the canary at 50 %", ready, 600, 1.0)
    except AssertionError as exc:  # say where it stopped: the run's state and the release's
        workers = prefect_api(settings.prefect_api_url, "POST",
                              f"/work_pools/{WORK_POOL}/workers/filter", json={}).text[:600]
        raise AssertionError(f"{exc}: run {run_state(settings, run_id)}, release "
                             f"{releases.active(SERVICE)}, workers {workers}") from None
    assert LocalTarget(settings).state(SERVICE).canary_weight == 50
    return active


def reconciled(settings: Settings, release_id: str, timeout: float = 120) -> float:
    """Seconds until the target state holds no canary and no release (from now)."""
    began = time.monotonic()

    def done() -> bool:
        state = LocalTarget(settings).state(SERVICE)
        return state.canary is None and state.release is None

    wait_for(f"release {release_id} reconciled", done, timeout)
    return time.monotonic() - began


def assert_all_on_stable(settings: Settings, version: str, held: bool = False) -> None:
    """Only stable servers in the backend (``held``: canary servers may be there at weight 0,
    as HAProxy starts before the reconciler has run)."""
    servers = RuntimeApi(settings.dir("haproxy", "admin.sock")).servers(backend_name(SERVICE))
    assert servers and all(s.name.startswith("stable-") or (held and s.weight == 0)
                           for s in servers), servers
    for _ in range(10):
        resp = httpx.get(f"{settings.url('haproxy')}/", headers={"Host": HOST}, timeout=10)
        assert resp.status_code == 200 and resp.json()["version"] == version, resp.text


def assert_audited(settings: Settings, seen: int, release_id: str, run_id: str) -> None:
    records = audit.trail(settings).records()[seen:]
    mine = [r for r in records if r.subject.startswith(release_id)]
    actions = [r.action for r in mine]
    assert "release.start" in actions and "release.reconciled" in actions, actions
    rec = next(r for r in mine if r.action == "release.reconciled")
    assert run_id in rec.subject and rec.outcome == "rolled_back", rec
    # the identity it ran as: the worker's AppRole for the rollback deployment, the operator's
    # token for `suite up` — never a fixed name, never the unauthenticated local account
    assert rec.actor.split(":")[0] in ("approle", "token", "userpass"), rec.actor
    assert not any(r.action.startswith("model.") for r in records)  # no champion moved


def load(settings: Settings) -> LoadGenerator:
    return LoadGenerator(f"{settings.url('haproxy')}/", 20, 900, None, host=HOST).start()


def assert_no_failure(report: LoadReport) -> None:
    assert report.ok > 0 and report.failed == 0, report.summary()


def test_kill_9_of_the_flow_run_process_rolls_back(release_platform: Settings,
                                                   crashy: Path) -> None:
    settings, stable = release_platform, stable_version(release_platform)
    seen = len(audit.trail(settings).records())
    run_id, _ = start_release(settings, crashy, 1)
    active = canary_at_50(settings, run_id)
    traffic = load(settings)
    os.kill(active.pid, signal.SIGKILL)
    elapsed = reconciled(settings, active.release)
    assert_no_failure(traffic.stop())
    assert_all_on_stable(settings, stable)
    assert wait_for("the run Crashed", lambda: run_state(settings, run_id)[0] == "CRASHED", 60)
    assert_audited(settings, seen, active.release, run_id)
    ended = Releases(settings).active(SERVICE)
    assert ended is not None and (ended.phase, ended.outcome) == ("ended", "rolled_back")
    print(f"kill -9 of the flow run: 100 % stable {elapsed:.1f}s after the kill")


def test_cancelling_the_run_through_the_api_rolls_back(release_platform: Settings,
                                                       crashy: Path) -> None:
    settings, stable = release_platform, stable_version(release_platform)
    seen = len(audit.trail(settings).records())
    run_id, _ = start_release(settings, crashy, 2)
    active = canary_at_50(settings, run_id)
    traffic = load(settings)
    resp = prefect_api(settings.prefect_api_url, "POST", f"/flow_runs/{run_id}/set_state",
                       json={"state": {"type": "CANCELLING", "name": "Cancelling"}})
    assert resp.status_code in (200, 201), resp.text
    elapsed = reconciled(settings, active.release)
    assert_no_failure(traffic.stop())
    assert_all_on_stable(settings, stable)
    assert wait_for("the run Cancelled",
                    lambda: run_state(settings, run_id)[0] == "CANCELLED", 60)
    assert_audited(settings, seen, active.release, run_id)
    print(f"cancellation: 100 % stable {elapsed:.1f}s after the request")


def suite_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(settings)
    env["PREFECT_API_URL"] = settings.prefect_api_url
    return subprocess.run([str(REPO / ".venv" / "bin" / "suite"), *args], env=env,
                          capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow  # restarts the whole platform: minutes on 2 cores
def test_suite_down_mid_release_refuses_then_abort_releases_rolls_back(
        release_platform: Settings, crashy: Path) -> None:
    settings, stable = release_platform, stable_version(release_platform)
    seen = len(audit.trail(settings).records())
    run_id, _ = start_release(settings, crashy, 3)
    active = canary_at_50(settings, run_id)
    refused = suite_cli(settings, "down")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert SERVICE in refused.stderr and active.release in refused.stderr
    assert "--abort-releases" in refused.stderr
    assert all(s.running for s in manager.status(settings))  # nothing was stopped
    assert LocalTarget(settings).state(SERVICE).canary_weight == 50
    down = suite_cli(settings, "down", "--abort-releases")
    assert down.returncode == 0, down.stdout + down.stderr
    state = LocalTarget(settings).state(SERVICE)
    assert state.canary is None and state.release is None, state
    assert not any(s.running for s in manager.status(settings))
    up = suite_cli(settings, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert_all_on_stable(settings, stable)
    records = audit.trail(settings).records()[seen:]
    ends = [r.action for r in records if r.subject.startswith(active.release)]
    assert "release.rolled_back" in ends or "release.reconciled" in ends, ends


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants, but not containers (a conmon and what it runs):
    they outlive their engine, as they would on this host."""
    try:
        proc = psutil.Process(pid)
        todo, doomed = [proc], []
        while todo:
            p = todo.pop()
            if "conmon" in p.name():
                continue
            doomed.append(p)
            todo.extend(p.children())
    except psutil.NoSuchProcess:
        return
    for p in doomed:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.slow  # restarts the whole platform: minutes on 2 cores
def test_kill_9_of_every_platform_process_then_suite_up(release_platform: Settings,
                                                        crashy: Path) -> None:
    """The canary takes no traffic when HAProxy comes back, and it is rolled back by the time
    `suite up` returns: by `suite up` itself, or first by the crash automation, whose rollback
    run a worker may pick up as soon as `suite up` has started it (the run's worker saw its
    process die and reported Crashed before it was killed itself) — the service's lock makes
    one of them do it, and the other find nothing left."""
    settings, stable = release_platform, stable_version(release_platform)
    seen = len(audit.trail(settings).records())
    run_id, _ = start_release(settings, crashy, 4)
    active = canary_at_50(settings, run_id)
    os.kill(active.pid, signal.SIGKILL)
    for svc in manager.status(settings):
        if svc.pid:
            _kill_tree(svc.pid)
    wait_for("every platform service down",
             lambda: not any(s.running for s in manager.status(settings)), 60)
    began = time.monotonic()
    only = suite_cli(settings, "up", "--only", "haproxy", "--without-audit")  # Vault is down
    assert only.returncode == 0, only.stdout + only.stderr
    cfg = settings.dir("haproxy", "haproxy.cfg").read_text()
    canary_lines = [line for line in cfg.splitlines() if "server canary-" in line]
    assert canary_lines and all(" weight 0 " in line for line in canary_lines), canary_lines
    assert_all_on_stable(settings, stable, held=True)  # before any reconciliation
    assert LocalTarget(settings).state(SERVICE).canary is not None  # not reconciled yet
    up = suite_cli(settings, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    elapsed = time.monotonic() - began
    by = "`suite up`" if f"reconciled {SERVICE}" in up.stdout else "the crash automation"
    state = LocalTarget(settings).state(SERVICE)
    assert state.canary is None and state.release is None
    assert_all_on_stable(settings, stable)
    assert run_state(settings, run_id)[0] == "CRASHED"
    assert_audited(settings, seen, active.release, run_id)
    print(f"kill -9 of everything: reconciled by {by} {elapsed:.1f}s after `suite up` began")


@pytest.mark.slow
def test_kill_9_of_the_worker_and_its_flow_run(release_platform: Settings,
                                              crashy: Path) -> None:
    """Nobody is left to report the crash: the heartbeats stop, the zombie automation marks
    the run Crashed (~200 s) and the rollback automation reconciles it on the other worker."""
    settings, stable = release_platform, stable_version(release_platform)
    seen = len(audit.trail(settings).records())
    run_id, _ = start_release(settings, crashy, 5)
    active = canary_at_50(settings, run_id)
    worker = psutil.Process(active.pid).parent()
    assert worker is not None and "worker" in " ".join(worker.cmdline()), worker
    traffic = load(settings)
    worker.kill()
    os.kill(active.pid, signal.SIGKILL)
    elapsed = reconciled(settings, active.release, timeout=420)
    assert_no_failure(traffic.stop())
    assert_all_on_stable(settings, stable)
    assert run_state(settings, run_id)[0] == "CRASHED"
    assert_audited(settings, seen, active.release, run_id)
    manager.up(settings)  # the killed worker back for the tests that follow
    print(f"kill -9 of the worker: 100 % stable {elapsed:.1f}s after the kill")
