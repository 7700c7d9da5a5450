"""A/A and shifted A/B simulations: the judge rarely cries wolf and sees real shifts."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.canary.judge import Classification, MetricConfig, classify_metric

LATENCY = MetricConfig(direction="increase")


def _rate(label: Classification, trials: int, n: int, shift: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        baseline = rng.lognormal(np.log(0.1), 0.5, n)
        canary = rng.lognormal(np.log(0.1 * shift), 0.5, n)
        hits += classify_metric(baseline, canary, LATENCY).classification == label
    return hits / trials


def test_a_a_latency_rarely_fails() -> None:
    assert _rate(Classification.HIGH, trials=300, n=60, shift=1.0, seed=1) <= 0.02


def test_a_a_sparse_errors_rarely_fail() -> None:
    rng = np.random.default_rng(2)
    highs = sum(
        classify_metric(rng.poisson(0.05, 300), rng.poisson(0.05, 300), LATENCY).classification
        == Classification.HIGH
        for _ in range(300)
    )
    assert highs / 300 <= 0.02


@pytest.mark.parametrize(("shift", "n"), [(1.5, 100), (1.25, 400)])
def test_shifted_latency_is_detected(shift: float, n: int) -> None:
    assert _rate(Classification.HIGH, trials=60, n=n, shift=shift, seed=3) >= 0.95


def test_doubled_error_rate_is_detected_by_the_rate_test() -> None:
    """Beyond Kayenta (``test: auto``): its rank-sum alone sees an interval of [0, 0] here."""
    rng = np.random.default_rng(4)
    counts = MetricConfig(direction="increase", test="auto")
    highs = sum(
        classify_metric(rng.poisson(0.05, 2000), rng.poisson(0.15, 2000), counts).classification
        == Classification.HIGH
        for _ in range(50)
    )
    assert highs / 50 >= 0.95
