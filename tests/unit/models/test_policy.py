from __future__ import annotations

from pathlib import Path

import pytest

from policies import model as model_policy
from suite.errors import ConfigError

GOOD = {"parity": {"max_abs_diff": 1e-4},
        "quality": {"min_accuracy": 0.9, "max_drop_vs_champion": 0.01}}


def test_the_shipped_policy_loads() -> None:
    policy = model_policy.load()
    assert policy.parity_max_abs_diff == 1e-4
    assert 0 < policy.min_accuracy <= 1


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "top level is list"),
    ({**GOOD, "speed": {}}, "unknown key 'speed'"),
    ({**GOOD, "parity": {"max_abs_diff": 1e-4, "rtol": 1}}, "unknown key 'parity.rtol'"),
    ({**GOOD, "parity": {"max_abs_diff": "small"}}, "parity.max_abs_diff is 'small'"),
    ({**GOOD, "parity": {"max_abs_diff": -1}}, r"parity.max_abs_diff is -1 \(expected a number"),
    ({**GOOD, "quality": {"min_accuracy": 1.5, "max_drop_vs_champion": 0}},
     r"quality.min_accuracy is 1.5 \(expected a number in \[0, 1\]\)"),
    ({**GOOD, "quality": {"min_accuracy": True, "max_drop_vs_champion": 0}},
     "quality.min_accuracy is True"),
    ({**GOOD, "quality": {"min_accuracy": 0.9}}, "missing key.*quality.max_drop_vs_champion"),
    ({**GOOD, "quality": 3}, "quality is 3"),
])
def test_bad_policy_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        model_policy.parse(data, "policies/model.yaml")


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        model_policy.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parity: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        model_policy.load(bad)
