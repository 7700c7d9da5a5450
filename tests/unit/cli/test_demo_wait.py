"""The demo's wait for a run says each new state and shows life while a state lasts."""

from __future__ import annotations

from typing import Any

from suite.cli.demo import ALIVE_EVERY, wait_for_run


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _states(*seq: tuple[str, str, int]) -> list[dict[str, Any]]:
    return [{"type": t, "name": n} for t, n, times in seq for _ in range(times)]


def test_each_state_once_then_a_sign_of_life_then_the_end() -> None:
    t = FakeTime()
    states = iter(_states(("SCHEDULED", "Scheduled", 2), ("RUNNING", "Running", 20),
                          ("COMPLETED", "Completed", 1)))
    said: list[str] = []
    kind = wait_for_run("release/release", lambda: next(states), said.append,
                        clock=t.clock, sleep=t.sleep)
    assert kind == "COMPLETED"
    assert said[0] == "  release/release: Scheduled (0s)"
    assert said[1] == "  release/release: Running (4s)"
    assert f"  release/release: Running ({4 + ALIVE_EVERY:.0f}s)" in said  # still alive
    assert said[-1] == "  release/release: Completed (44s)"


def test_timeout_returns_the_last_state() -> None:
    t = FakeTime()
    kind = wait_for_run("train/train", lambda: {"type": "RUNNING", "name": "Running"},
                        lambda line: None, timeout=10, clock=t.clock, sleep=t.sleep)
    assert kind == "RUNNING"


def test_api_hiccup_is_not_an_end() -> None:
    t = FakeTime()
    states = iter([{}, {"type": "FAILED", "name": "Failed"}])
    said: list[str] = []
    assert wait_for_run("x", lambda: next(states), said.append, clock=t.clock,
                        sleep=t.sleep) == "FAILED"
    assert said == ["  x: ? (0s)", "  x: Failed (2s)"]
