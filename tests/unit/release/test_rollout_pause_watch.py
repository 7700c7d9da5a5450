"""A canary pause fed to the sequential tests of the analysis around it: a critical rejection
rolls back during the pause (recorded and audited), a quiet pause is recorded with its p-values.
Scripted counters and clock (tests/unit/canary/test_sequential_wiring.py): no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies.canary import parse
from suite.services.spec import AnalysisRef, ServiceSpec, Step, Strategy, StrategyKind
from suite.settings import Settings
from tasks import rollout
from tasks.analyze import PauseWatch
from tasks.control import Active, Releases
from tasks.report import ReleaseRecord, render
from tasks.targets.base import Workload
from tests.unit.canary.test_sequential_wiring import TEMPLATE, Clock, Platform

STEPS = (Step("setWeight", weight=20), Step("pause", weight=20, pause_s=30),
         Step("analysis", weight=20, analysis=AnalysisRef(("http",), 20, 2)))


def rollout_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: Platform,
                 audited: list[dict[str, Any]]) -> rollout.Rollout:
    monkeypatch.setattr(rollout, "audit_task",
                        lambda *a, **k: audited.append({"action": a[1], **a[3]}))

    def watch(paths: dict[str, str], settings: Settings, service: str, step: int,
              weight: int) -> PauseWatch:
        assert (paths, service, step, weight) == ({"http": "http.yaml"}, "web", 2, 20)
        return PauseWatch(platform, {"http": parse(TEMPLATE)}, variables={}, step=step,
                          weight=weight, clock=platform.clock)

    monkeypatch.setattr(rollout, "pause_watch", watch)
    monkeypatch.setattr(rollout.time, "monotonic", platform.clock)
    settings = Settings(home=tmp_path, ports={})
    Releases(settings).start(Active("web", "r1", "run", "canary", "now"))
    spec = ServiceSpec(service="web", port=8080, readiness="/",
                       strategy=Strategy(StrategyKind.CANARY, steps=STEPS))
    wl = Workload(service="web", release="r1", version="v", image="i")
    return rollout.Rollout(ReleaseRecord("r1", "web", "canary", "local"), settings, "local",
                           spec, wl, {"http": "http.yaml"}, sleep=platform.clock.sleep)


def run_pause(ro: rollout.Rollout) -> bool:
    with rollout._watched_pause(ro, 2, 20) as look:
        return rollout._pause(ro, 2, 30, look)


def test_canary_errors_roll_back_during_the_pause(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    audited: list[dict[str, Any]] = []
    clock = Clock()
    ro = rollout_with(tmp_path, monkeypatch, Platform(clock, canary_errors_every=1), audited)
    with pytest.raises(rollout.RolledBack, match="step 2 FAIL during the pause at 20 %: "
                                                 "sequential errors at"):
        run_pause(ro)
    assert clock.now < 10  # well before the pause's 30 s
    (step,) = ro.rec.steps
    assert (step["kind"], step["verdict"], step["template"]) == ("pause", "FAIL", "http")
    assert audited[-1]["action"] == "canary.analysis" and audited[-1]["verdict"] == "FAIL"
    text = render(ro.rec)  # the report: the pause, its tests' crossing and p over time, a chart
    assert "## Canary step 2 (pause) at 20 % — FAIL (score 0.0)" in text
    crossed = step["sequential"][0]["crossed_at"]
    assert f"| errors | rate | True | {crossed:g} s | 0 s: 1, " in text
    assert "![step 2: canary against stable](data:image/png;base64," in text


def test_a_quiet_pause_runs_its_length_and_is_recorded(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    audited: list[dict[str, Any]] = []
    clock = Clock()
    ro = rollout_with(tmp_path, monkeypatch, Platform(clock), audited)
    assert run_pause(ro) is False
    assert clock.now >= 30 and not audited
    (step,) = ro.rec.steps
    assert (step["kind"], step["verdict"]) == ("pause", "PASS")
    assert all(len(c["history"]) >= 29 for c in step["sequential"])
