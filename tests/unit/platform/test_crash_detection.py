"""Crash detection as configured by the platform: heartbeats on every worker, the two
automations `suite up` creates (valid for Prefect's own schema), and HAProxy starting with an
unfinished release's canary held at weight 0."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect.server.events.schemas.automations import AutomationCreate, Posture

from suite.deployments import (
    ROLLBACK_AUTOMATION,
    ZOMBIE_AUTOMATION,
    rollback_automation,
    zombie_automation,
)
from suite.haproxy import Route, Server, held, render_routes
from suite.platform.services.workers import HEARTBEAT_SECONDS, WorkerService
from suite.settings import Settings


def test_every_worker_runs_flows_with_heartbeats(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from suite.platform import api_auth, credentials

    # the worker's environment carries Prefect's auth string, read from Vault: none runs here
    monkeypatch.setattr(api_auth, "prefect_auth", lambda settings: SecretStr("suite:unit"))
    settings = Settings(home=tmp_path)
    credentials.ensure_password(settings, "mlflow-suite")  # what MLflow's start makes
    env = WorkerService(settings, 1).env()
    assert env["PREFECT_API_AUTH_STRING"] == "suite:unit"
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS)
    assert HEARTBEAT_SECONDS >= 30  # Prefect's minimum


def test_the_zombie_automation_crashes_a_run_whose_heartbeats_stop() -> None:
    made = AutomationCreate.model_validate(zombie_automation())
    assert made.name == ZOMBIE_AUTOMATION
    trigger = made.trigger
    assert trigger.posture == Posture.Proactive  # type: ignore[union-attr]
    assert trigger.after == {"prefect.flow-run.heartbeat"}  # type: ignore[union-attr]
    # any flow-run event counts as a sign of life: a state named RolledBack is not a zombie
    assert trigger.expect == {"prefect.flow-run.*"}  # type: ignore[union-attr]
    # several of the workers' heartbeats, and longer than Prefect's default (180 s), so a run
    # started outside the workers (in-process) is never taken for a zombie
    within = trigger.within.total_seconds()  # type: ignore[union-attr]
    assert within >= 3 * HEARTBEAT_SECONDS and within > 180
    assert made.actions[0].type == "change-flow-run-state"
    assert made.model_dump(mode="json")["actions"][0]["state"] == "CRASHED"


def test_the_rollback_automation_starts_rollback_for_the_runs_service() -> None:
    dep = str(uuid.uuid4())
    made = AutomationCreate.model_validate(rollback_automation(dep))
    assert made.name == ROLLBACK_AUTOMATION
    trigger = made.trigger
    assert trigger.expect == {"prefect.flow-run.Crashed",  # type: ignore[union-attr]
                              "prefect.flow-run.Cancelled"}
    related = made.model_dump(mode="json")["trigger"]["match_related"]
    assert related == {"prefect.resource.role": "flow", "prefect.resource.name": "release"}
    action = made.model_dump(mode="json")["actions"][0]
    assert action["type"] == "run-deployment" and action["deployment_id"] == dep
    params = action["parameters"]
    assert params["service"] == "{{ flow_run.parameters.service }}"
    assert params["flow_run_id"] == "{{ event.resource.id }}"


def _route(release: str) -> Route:
    return Route("web", "web.localhost", live=(Server("stable-1-a", 1, 1),
                                                Server("canary-1-b", 2, 1)),
                 preview=(Server("preview-1-c", 3, 100),), release=release)


def test_an_unfinished_release_starts_with_its_canary_and_preview_at_weight_0() -> None:
    route = held(_route("r2"))
    assert [(s.name, s.weight) for s in route.live] == [("stable-1-a", 1), ("canary-1-b", 0)]
    assert route.preview[0].weight == 0
    _, _, backends = render_routes([_route("r2")], at_start=True)
    assert "server canary-1-b 127.0.0.1:2 weight 0 " in backends


def test_a_reload_while_a_release_runs_keeps_its_weights() -> None:
    _, _, backends = render_routes([_route("r2")])
    assert "server canary-1-b 127.0.0.1:2 weight 1 " in backends
    assert held(_route("")) == _route("")  # no release in progress: nothing is held


def test_stable_at_weight_0_gets_traffic_again_when_the_canary_is_held() -> None:
    at_100 = Route("web", "h", live=(Server("stable-1-a", 1, 0), Server("canary-1-b", 2, 100)),
                   release="r2")
    assert [s.weight for s in held(at_100).live] == [1, 0]


def test_an_old_route_record_reads_as_no_release() -> None:
    text = _route("").to_json().replace('"release": ""', '"x": 1').replace(',\n  "x": 1', "")
    assert Route.from_json(text).release == ""
