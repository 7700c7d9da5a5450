"""The exact rate comparison against R's poisson.test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tasks.canary.judge import rate_test
from tasks.canary.rates import is_sparse_counts

CASES = json.loads((Path(__file__).parent / "r_reference.json").read_text())["poisson"]


def _sample(events: int, size: int) -> np.ndarray:
    values = np.zeros(size)
    values[: min(events, size)] = 1.0
    values[0] += events - min(events, size)
    return values


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rate_test_matches_r_poisson_test(case: dict) -> None:
    canary = _sample(case["canary_events"], case["n_canary"])
    baseline = _sample(case["baseline_events"], case["n_baseline"])
    result = rate_test(baseline, canary, case["confidence"])
    assert result.canary_events == case["canary_events"]
    assert result.p_value == pytest.approx(case["p_value"], rel=1e-7)
    for key in ("low", "high", "estimate"):
        got, want = getattr(result.interval, key), case[key]
        if math.isinf(want):
            assert math.isinf(got)
        else:
            assert got == pytest.approx(want, rel=1e-7), key


def test_no_events_on_either_side_is_no_evidence() -> None:
    result = rate_test(np.zeros(10), np.zeros(12), 0.98)
    assert result.p_value == 1.0
    assert result.interval.low == 0.0 and math.isinf(result.interval.high)


@pytest.mark.parametrize(
    ("control", "experiment", "sparse"),
    [
        ([0, 0, 0, 1], [0, 0, 2, 0], True),
        ([0, 1, 2, 3], [1, 1, 2, 0], False),  # counts, but not mostly zero
        ([0, 0, 0, 0.5], [0, 0, 0, 0], False),  # not whole numbers
        ([0, 0, 0, -1], [0, 0, 0, 0], False),  # negative
    ],
)
def test_sparse_count_detection(control: list, experiment: list, sparse: bool) -> None:
    assert is_sparse_counts(np.array(control, float), np.array(experiment, float)) is sparse
