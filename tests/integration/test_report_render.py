"""The release report's charts as the Prefect UI shows them: a real Prefect server (its own,
on a free port), the report posted as a markdown artifact, the artifact's page loaded in
headless Chromium (Debian's ``chromium-headless-shell``) in both of Prefect's UIs; the DOM must
hold the report's data-URI images. The screenshot is kept for a person to look at:
``pytest tests/integration/test_report_render.py`` prints where."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tasks.report import ReleaseRecord, render
from tests.conftest import free_port
from tests.unit.release.test_report_chart import fake_step

CHROMIUM = shutil.which("chromium-headless-shell")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium-headless-shell")


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prefect-ui")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": f"{url}/api", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db"}
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start",
                             "--host", "127.0.0.1", "--port", str(port), "--no-services"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # 9-14 s idle; ~90 s seen on a loaded machine
        while True:  # health, not a fixed sleep
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prefect server did not start: {(home / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=30000", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("ui", ["/v2", ""], ids=["v2", "v1"])
def test_release_report_charts_render_in_the_prefect_ui(prefect_ui: str, ui: str,
                                                        tmp_path: Path) -> None:
    rec = ReleaseRecord(release="r1", service="hello", strategy="canary", target="local",
                        outcome="rolled_back", reason="step 3 FAIL", steps=[fake_step()])
    resp = httpx.post(f"{prefect_ui}/api/artifacts/", json={
        "key": f"release-report{ui.replace('/', '-')}", "type": "markdown",
        "description": "render check",
        "data": render(rec, prometheus="http://127.0.0.1:9090")}, timeout=10)
    assert resp.status_code == 201, resp.text
    page = f"{prefect_ui}{ui}/artifacts/artifact/{resp.json()['id']}"
    for _ in range(3):  # the single-page app may still be fetching: look again, a few times
        dom = _chromium("--dump-dom", page).stdout
        if dom.count('src="data:image/png;base64,') == 2:
            break
    assert dom.count('src="data:image/png;base64,') == 2, dom[-2000:]
    shot = tmp_path / f"release-report{ui.replace('/', '-')}.png"
    _chromium("--window-size=1280,2600", f"--screenshot={shot}", page)
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_runs_page_tells_promoted_from_rolled_back(prefect_ui: str, tmp_path: Path) -> None:
    """Two runs of a flow ending as the release flow ends (tasks/release.outcome_state): the
    UI shows the rolled-back one as RolledBack, the promoted one as Completed; both are of type
    COMPLETED (what automations, the demo and `suite release --wait` read). The Runs page's
    screenshot is kept for a person to look at."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.release import Outcome, outcome_state

    @flow(name="release-outcome-check")
    def ends(outcome: str) -> Outcome:
        return outcome_state({"outcome": outcome}, outcome, f"{outcome} on purpose")

    with temporary_settings(updates={PREFECT_API_URL: f"{prefect_ui}/api"}):
        assert ends("rolled_back") == {"outcome": "rolled_back"}  # a caller still gets it
        assert ends("promoted") == {"outcome": "promoted"}
    runs = httpx.post(f"{prefect_ui}/api/flow_runs/filter", json={
        "flows": {"name": {"any_": ["release-outcome-check"]}}}, timeout=10).json()
    assert {(r["state"]["type"], r["state"]["name"]) for r in runs} == {
        ("COMPLETED", "RolledBack"), ("COMPLETED", "Completed")}
    rolled = next(r["id"] for r in runs if r["state"]["name"] == "RolledBack")
    page = f"{prefect_ui}/runs/flow-run/{rolled}"  # its badge (the Runs list is virtualised:
    for _ in range(3):  # headless --dump-dom does not always lay it out; the screenshot does)
        dom = _chromium("--dump-dom", page).stdout
        if "RolledBack" in dom:
            break
    assert "RolledBack" in dom, dom[-2000:]
    shot = tmp_path / "runs-page.png"
    _chromium("--window-size=1400,900", f"--screenshot={shot}", f"{prefect_ui}/runs")
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot of the Runs page: {shot}")
