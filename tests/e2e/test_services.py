"""Services onboarded as a team would (a git repository with a Dockerfile and a suite.yaml),
released on the local target with real containers, HAProxy, Prometheus, MLflow and Prefect.

The module onboards ``examples/hello`` from a git URL (a bare repository of its own) and the
model server from this repository, releases both, rolls back a bad canary of each at the same
time (the rolled-back release's report carries its charts and the team's notification endpoint
receives the notices), and removes a service while the other one serves."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.data import default_rows
from suite import engine as engine_mod
from suite.errors import ConfigError
from suite.load import LoadGenerator
from suite.services import onboard
from suite.services.spec import ManifestError
from suite.settings import Settings
from tasks.targets.local import LocalTarget
from tests.conftest import REPO, prefect_api
from tests.e2e.conftest import in_thread, release, train

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
GIT = ["git", "-c", "user.email=team@example.org", "-c", "user.name=team"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def team_repo(root: Path, name: str, source: Path) -> tuple[Path, str]:
    """A bare repository (its file:// URL is what is registered) and a work tree to commit in."""
    work = root / f"{name}-work"
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "first", cwd=work)
    bare = root / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git("remote", "add", "origin", str(bare), cwd=work)
    return work, f"file://{bare}"


def commit(work: Path, message: str) -> str:
    git("commit", "-qam", message, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def get(settings: Settings, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"{settings.url('haproxy')}{path}", headers={"Host": host}, timeout=10)


@pytest.fixture(scope="module")
def hello(release_platform: Settings, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Path, str]]:
    work, url = team_repo(tmp_path_factory.mktemp("teams"), "hello", REPO / "examples" / "hello")
    reg, spec = onboard.add(release_platform, url, "main")
    assert reg.service == "hello" and spec.host == "hello.localhost"
    yield work, url


@pytest.fixture(scope="module")
def model_server(release_platform: Settings) -> Iterator[str]:
    train(seed=0)
    onboard.add(release_platform, str(REPO), _branch())
    out = release(service="model-server", git_sha=_head(), synthetic_load_rps=10)
    assert out["outcome"] == "promoted", out
    yield "model-server"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A team's chat webhook on loopback: the URL to put in `notifications:` and what it got."""
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/team-hello", got
    server.shutdown()


def release_report(settings: Settings, release_id: str) -> str:
    """The markdown of the `release-report` artifact of one release (its description names it)."""
    found = prefect_api(settings.prefect_api_url, "POST", "/artifacts/filter", json={
        "artifacts": {"key": {"any_": ["release-report"]}}, "sort": "CREATED_DESC",
        "limit": 20}).json()
    mine = [a for a in found if str(a.get("description", "")).startswith(f"release {release_id}:")]
    assert len(mine) == 1, [a.get("description") for a in found]
    return str(mine[0]["data"])


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()


def _branch() -> str:
    name = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
    return "HEAD" if name == "HEAD" else name


def test_service_from_a_git_url_is_released_and_answers_on_its_host(
        release_platform: Settings, hello: tuple[Path, str]) -> None:
    out = release(service="hello")
    assert out["outcome"] == "promoted", out
    resp = get(release_platform, "hello.localhost", "/hello?name=ada")
    assert resp.status_code == 200 and resp.json()["message"] == "hello, ada!"
    state = LocalTarget(release_platform).state("hello")
    assert state.stable is not None and len(state.stable.instances) == 2
    assert get(release_platform, "nobody.localhost").status_code == 404
    # another local user reaches the replicas only through HAProxy: neither the published
    # port nor the container's own address answers it; the platform's user (root) still does
    if os.geteuid() == 0 and shutil.which("runuser"):
        engine = engine_mod.client(release_platform)
        for inst in state.stable.instances:
            attrs = engine.containers.get(inst.container).attrs
            address = attrs["NetworkSettings"]["IPAddress"] or next(
                iter(attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
            for host, port in (("127.0.0.1", inst.port), (address, 8080)):
                assert _connects_as("root", host, port), (host, port)
                assert not _connects_as("nobody", host, port), (inst.container, host, port)
        by_nobody = subprocess.run(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
             "import http.client as h; c = h.HTTPConnection('127.0.0.1', "
             f"{release_platform.port('haproxy')}, timeout=5); "
             "c.request('GET', '/hello?name=x', headers={'Host': 'hello.localhost'}); "
             "print(c.getresponse().status)"], capture_output=True, text=True, check=False)
        assert by_nobody.stdout.strip() == "200", by_nobody.stderr


def _connects_as(user: str, host: str, port: int) -> bool:
    """Whether ``user`` can open a TCP connection to ``host:port`` (within 3 s)."""
    probe = ("import socket, sys\n"
             f"try: socket.create_connection(({host!r}, {port}), 3).close()\n"
             "except OSError: sys.exit(1)\n")
    argv = ["/usr/bin/python3", "-c", probe]
    if user != "root":
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, check=False, timeout=30).returncode == 0


def test_a_second_release_of_one_service_waits_for_the_first(
        release_platform: Settings, hello: tuple[Path, str]) -> None:
    """While hello's release slot is held (here by the test, as a running release holds it), a
    new release of hello is shown AwaitingReleaseSlot on the Runs page and does nothing — no
    record, no change — until the slot is free; then it runs to its end."""
    import time

    from prefect.concurrency.sync import concurrency

    from suite import audit
    from suite.services.onboard import concurrency_limit, ensure_concurrency_limit

    def latest_run_state() -> tuple[str, str] | None:
        runs = prefect_api(release_platform.prefect_api_url, "POST", "/flow_runs/filter", json={
            "flows": {"name": {"any_": ["release"]}}, "sort": "EXPECTED_START_TIME_DESC",
            "limit": 1}).json()
        return (runs[0]["id"], runs[0]["state"]["name"]) if runs else None

    from dataclasses import replace as with_field

    from suite import people, vault

    approver = with_field(release_platform, token_file=release_platform.home / "e2e-approver")
    people.add_user(vault.client(release_platform), "e2e-approver", "e2e-approver-pass",
                    people.Role.APPROVER)
    people.save_session(approver, people.login(approver, "e2e-approver", "e2e-approver-pass"))
    token = people.approval_token(approver)
    ensure_concurrency_limit(release_platform, "hello")
    seen = len(audit.trail(release_platform).records())
    before = latest_run_state()
    with concurrency(concurrency_limit("hello"), occupy=1, strict=True):
        # the second replaces the replicas one by one (no analysis): what is tested is that it
        # waits for the slot, not a second canary
        # another strategy than the manifest's needs an approver's token (issue 13 item 4)
        waiting, box = in_thread(lambda: release(service="hello", strategy="rolling",
                                                 approval_token=token))
        deadline = time.monotonic() + 300
        while (state := latest_run_state()) in (None, before) or state[1] != \
                "AwaitingReleaseSlot":
            assert waiting.is_alive() and time.monotonic() < deadline, (box, state)
            time.sleep(0.5)
        run_id = state[0]
        assert [r.action for r in audit.trail(release_platform).records()[seen:]] == []
    waiting.join(900)
    assert "error" not in box, box
    assert box["result"]["outcome"] == "promoted", box["result"]
    actions = [r.action for r in audit.trail(release_platform).records()[seen:]
               if r.action in ("release.start", "release.promoted")]
    assert actions == ["release.start", "release.promoted"], actions
    states = prefect_api(release_platform.prefect_api_url, "GET", "/flow_run_states/",
                         params={"flow_run_id": run_id}).json()
    names = [st["name"] for st in states]
    assert names.index("AwaitingReleaseSlot") < len(names) - 1 and names[-1] == "Completed", names


def test_a_stable_replica_killed_during_analysis_is_healed(
        release_platform: Settings, hello: tuple[Path, str]) -> None:
    """A stable replica of hello is killed (SIGKILL of its container) while a canary is being
    analysed: stable is healed (the replica replaced, the route updated, deploy.heal audited),
    the step judges again from the heal on, the canary is promoted, and HAProxy's retries lose
    no request."""
    import time

    from suite import audit, engine
    from tasks.control import Releases

    target = LocalTarget(release_platform)
    if target.state("hello").stable is None:  # run alone: hello's first release
        assert release(service="hello")["outcome"] == "promoted"
    before = target.state("hello")
    assert before.stable is not None
    victim = before.stable.instances[0].container
    seen = len(audit.trail(release_platform).records())
    thread, box = in_thread(lambda: release(service="hello", synthetic_load_rps=20))
    releases, deadline = Releases(release_platform), time.monotonic() + 600
    while True:  # the canary's first analysis step has begun
        active = releases.active("hello")
        if active is not None and active.release != before.stable.workload.release and \
                active.phase != "ended" and active.step.endswith("analysis"):
            break
        assert thread.is_alive() and time.monotonic() < deadline, (box, active)
        time.sleep(0.5)
    engine.client(release_platform).containers.get(victim).kill()
    thread.join(900)
    assert "error" not in box, box
    out = box["result"]
    assert out["outcome"] == "promoted", out["reason"]
    assert out["load_failed"] == 0, out
    records = audit.trail(release_platform).records()[seen:]
    heals = [r for r in records if r.action == "deploy.heal"]
    assert heals and heals[0].subject.startswith(out["release"]), [r.action for r in records]
    assert "deploy.promote" in [r.action for r in records]
    report = next(str(a["data"]) for a in prefect_api(
        release_platform.prefect_api_url, "POST", "/artifacts/filter", json={
            "artifacts": {"key": {"any_": ["release-report"]}}, "sort": "CREATED_DESC",
            "limit": 20}).json() if str(a.get("description", "")).startswith(
        f"release {out['release']}:"))
    healed = report.split("## Stable healed during the analysis", 1)
    assert len(healed) == 2 and victim in healed[1], report[-1500:]
    assert "stable healed (" in report  # the step's reason: judged after the heal
    after = target.state("hello")
    assert after.stable is not None and after.stable.workload.release == out["release"]
    assert target.problems("hello") == [] and after.previous is None


def test_a_bad_manifest_is_refused_naming_the_key(release_platform: Settings,
                                                  tmp_path: Path) -> None:
    work, url = team_repo(tmp_path, "broken", REPO / "examples" / "hello")
    text = (work / "suite.yaml").read_text().replace("port: 8080", "port: eighty")
    (work / "suite.yaml").write_text(text.replace("service: hello", "service: broken"))
    commit(work, "typo")
    with pytest.raises(ManifestError, match=r"port: 'eighty' is not an integer 1\.\.65535"):
        onboard.add(release_platform, url, "main")
    with pytest.raises(ConfigError, match="not registered"):
        release(service="broken")


def test_model_server_replicas_run_with_the_manifests_limits(
        release_platform: Settings, model_server: str) -> None:
    """suite.yaml's resources (512Mi, 1 CPU, 256 pids) are the containers' cgroup limits."""
    from suite import engine

    containers = engine.client(release_platform).containers.list(
        filters={"label": "suite.service=model-server"})
    assert containers
    for container in containers:
        host = container.attrs["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (
            512 * 1024**2, 10**9, 256), container.name
        assert host["MemorySwap"] == host["Memory"]  # no swap beyond the limit


def test_two_bad_canaries_at_once_each_rolled_back(
        release_platform: Settings, hello: tuple[Path, str], model_server: str,
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    """hello's new commit answers 500 to a third of its requests; the model server's new
    version is 40 ms slower: both are caught by their own analysis, both stable keep serving.
    The same commit names a notification endpoint: it gets hello's start and rollback notices,
    and the rolled-back release's report embeds its charts."""
    work, _ = hello
    manifest = work / "suite.yaml"
    bad = "HELLO_GREETING: hello, HELLO_ERROR_RATIO: '0.3'"
    url, notices = receiver
    text = manifest.read_text().replace("HELLO_GREETING: hello", bad).rstrip("\n")
    manifest.write_text(f"{text}\nnotifications: [{url}]\n")
    commit(work, "a bad commit")
    rows = default_rows(8)
    load = LoadGenerator(f"{release_platform.url('haproxy')}/predict", 10, 600, rows,
                         host="model-server.localhost").start()
    bad_hello, box_hello = in_thread(lambda: release(service="hello", synthetic_load_rps=20))
    bad_model, box_model = in_thread(lambda: release(
        service="model-server", git_sha=_head(), env={"SERVE_FAULT_LATENCY_MS": "40"}))
    bad_hello.join(900)
    bad_model.join(900)
    report = load.stop()
    assert "error" not in box_hello and "error" not in box_model, (box_hello, box_model)
    assert box_hello["result"]["outcome"] == "rolled_back", box_hello["result"]["reason"]
    assert "errors" in box_hello["result"]["reason"] or "success-rate" in \
        box_hello["result"]["reason"]
    assert box_model["result"]["outcome"] == "rolled_back", box_model["result"]["reason"]
    assert report.failed == 0, report.summary()
    assert get(release_platform, "hello.localhost").status_code == 200
    for service in ("hello", "model-server"):
        assert LocalTarget(release_platform).state(service).canary is None

    rolled = box_hello["result"]
    events = [n["event"] for n in notices]  # (a MARGINAL step would add waiting_approval)
    assert events[0] == "started" and events[-1] == "rolled_back", notices
    assert {n["release"] for n in notices} == {rolled["release"]}, notices
    notice = notices[-1]
    assert notice["service"] == "hello" and notice["outcome"] == "rolled_back"
    assert notice["reason"] == rolled["reason"][:500] and notice["reason"]
    assert notice["run_url"].startswith(f"{release_platform.url('prefect')}/runs/flow-run/")
    markdown = release_report(release_platform, rolled["release"])
    assert markdown.startswith(f"# Release {rolled['release']} — ROLLED_BACK")
    charts = re.findall(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    titles = [title for title, _ in charts]
    assert "weight and verdict of each step" in titles, titles
    assert any(t.startswith("step ") and "canary against stable" in t for t in titles), titles
    assert all(base64.b64decode(png).startswith(b"\x89PNG\r\n") for _, png in charts)


def test_removing_a_service_drops_no_request_of_another(
        release_platform: Settings, hello: tuple[Path, str], model_server: str) -> None:
    load = LoadGenerator(f"{release_platform.url('haproxy')}/predict", 30, 600, default_rows(8),
                         host="model-server.localhost").start()
    target = LocalTarget(release_platform)
    with pytest.raises(ConfigError, match="still runs"):
        onboard.remove(release_platform, "hello", 2)
    target.teardown("hello")
    onboard.remove(release_platform, "hello", 0)
    report = load.stop()
    assert report.sent > 0 and report.failed == 0, report.summary()
    assert get(release_platform, "hello.localhost").status_code == 404
