from __future__ import annotations

import math

import pytest

from models.validate import Measurements, enforce, evaluate
from policies.model import ModelPolicy
from suite.errors import GateBlocked

POLICY = ModelPolicy(parity_max_abs_diff=1e-4, min_accuracy=0.9, max_drop_vs_champion=0.01)


def m(diff: float = 1e-6, acc: float = 0.95, champ: float | None = None) -> Measurements:
    return Measurements(parity_max_abs_diff=diff, accuracy=acc, n_test=360,
                        champion_version="4" if champ is not None else None,
                        champion_accuracy=champ)


@pytest.mark.parametrize(("measured", "allowed", "failure"), [
    (m(), True, None),
    (m(champ=0.955), True, None),  # within the tolerance of the champion
    (m(acc=0.94, champ=0.95), True, None),  # exactly the tolerance
    (m(diff=2e-4), False, "parity max abs diff 0.0002 > parity.max_abs_diff 0.0001"),
    (m(diff=math.nan), False, "parity max abs diff nan > parity.max_abs_diff"),
    (m(acc=0.85), False, "test accuracy 0.8500 < quality.min_accuracy 0.9"),
    (m(acc=0.92, champ=0.96), False,
     "test accuracy 0.9200 < champion v4 0.9600 - quality.max_drop_vs_champion 0.01 = 0.9500"),
])
def test_gate_table(measured: Measurements, allowed: bool, failure: str | None) -> None:
    decision = evaluate(POLICY, measured)
    assert decision.allowed is allowed
    assert len(decision.reasons) == 3
    if failure:
        assert any(failure in f for f in decision.failures), decision.failures


def test_blocked_gate_raises_with_measured_value_and_threshold() -> None:
    with pytest.raises(GateBlocked, match=r"model gate blocked: .*0.8500 < quality.min_accuracy"):
        enforce(evaluate(POLICY, m(acc=0.85)))


def test_every_failure_is_reported() -> None:
    decision = evaluate(POLICY, m(diff=1.0, acc=0.5, champ=0.99))
    assert len(decision.failures) == 3
