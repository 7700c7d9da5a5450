"""Progress for long CLI work: plain lines off a terminal, a spinner on one, nothing if quiet."""

from __future__ import annotations

import io
from collections.abc import Callable
from itertools import count

import pytest

from suite.cli.progress import Activity


def _clock() -> Callable[[], float]:
    ticks = count(0, 12)
    return lambda: float(next(ticks))


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Activity("release of hello", stream=out, clock=_clock()) as act:
        act.update("Running · step 1: setWeight · weight 20 %")
        act.update("Running · step 1: setWeight · weight 20 %")  # repeated: shown once
        act.update("Running · step 3 · weight 20 % · last verdict PASS")
    assert out.getvalue().splitlines() == [
        "release of hello ...",
        "  Running · step 1: setWeight · weight 20 %",
        "  Running · step 3 · weight 20 % · last verdict PASS",
        "release of hello: done after 12 s",
    ]
    assert "\x1b" not in out.getvalue()  # no control characters in a log


def test_failure_is_said() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Activity("base image", stream=out, interactive=False):
        raise RuntimeError("debootstrap failed")
    assert out.getvalue().splitlines()[-1].startswith("base image: failed after")


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    with Activity("release of hello", stream=out, quiet=True) as act:
        act.update("Running")
    assert out.getvalue() == "" and act.last == "Running"


def test_terminal_gets_a_spinner_and_a_last_line() -> None:
    out = io.StringIO()
    with Activity("model-server image", stream=out, interactive=True) as act:
        act.update("building and pushing")
    assert out.getvalue().rstrip().endswith("model-server image: done after 0 s")
