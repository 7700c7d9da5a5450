"""The demo's summary line of a rolled-back canary: the seconds it served, read from the stages
table of the release report as tasks/report.render writes it."""

from __future__ import annotations

from suite.cli.demo import canary_seconds, report_stages
from tasks.report import ReleaseRecord, StageRecord, render


def record(outcome: str, stages: list[tuple[str, float, str]]) -> ReleaseRecord:
    rec = ReleaseRecord("r1", "model-server", "canary", "local", outcome=outcome,
                        reason="step 2 FAIL during the pause at 20 %: sequential latency at 1 s")
    rec.stages = [StageRecord(name, seconds, result) for name, seconds, result in stages]
    return rec


STAGES = [("plan", 0.4, "ok"), ("build", 3.2, "ok"), ("deploy-canary", 2.5, "ok"),
          ("step 1: weight 20 %", 0.3, "ok"), ("step 2: pause 10s", 1.6, "failed"),
          ("synthetic-load", 30.0, "ok")]


def test_a_rolled_back_canary_served_from_its_weight_to_the_failed_step() -> None:
    markdown = render(record("rolled_back", STAGES), pictures=False)
    stages = report_stages(markdown)
    assert stages == [(name, seconds) for name, seconds, _ in STAGES]
    assert canary_seconds(stages, "rolled_back") == 1.6


def test_every_step_after_the_weight_counts_and_nothing_else() -> None:
    later = [*STAGES[:4], ("step 2: pause 10s", 10.0, "ok"),
             ("step 3: analysis model-server at 20 %", 4.2, "failed"), ("synthetic-load", 9, "ok")]
    stages = report_stages(render(record("rolled_back", later), pictures=False))
    assert canary_seconds(stages, "rolled_back") == 14.2


def test_no_figure_for_a_promoted_release_or_one_without_a_canary() -> None:
    stages = report_stages(render(record("promoted", STAGES), pictures=False))
    assert canary_seconds(stages, "promoted") is None
    assert canary_seconds([("plan", 1.0), ("deploy-first", 3.0)], "rolled_back") is None
    assert report_stages("no table here") == []


def test_the_warm_up_before_the_weight_is_not_canary_traffic() -> None:
    warmed = [*STAGES[:3], ("warm-up canary", 3.1, "ok"), *STAGES[3:]]
    stages = report_stages(render(record("rolled_back", warmed), pictures=False))
    assert canary_seconds(stages, "rolled_back") == 1.6
