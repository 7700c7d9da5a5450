from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from models.onnx_contract import META_DATA_DIGEST, META_MODEL_NAME
from policies.model import ModelPolicy
from suite.errors import ConfigError, GateBlocked
from tasks.train import Trained, check_model_name, export_model, git_sha, validate_model

STRICT = ModelPolicy(parity_max_abs_diff=1e-4, min_accuracy=0.999, max_drop_vs_champion=0.0)
LENIENT = ModelPolicy(parity_max_abs_diff=1e-4, min_accuracy=0.5, max_drop_vs_champion=0.0)


def test_export_records_provenance_in_the_file(sklearn_trained: Trained, tmp_path: Path) -> None:
    info = export_model(sklearn_trained, tmp_path, "digits-x")
    meta = {p.key: p.value for p in onnx.load(str(info.path)).metadata_props}
    assert meta[META_MODEL_NAME] == "digits-x"
    assert meta[META_DATA_DIGEST] == sklearn_trained.split.digest


def test_validation_passes_and_gives_reasons(sklearn_trained: Trained, sklearn_onnx: Path,
                                             tmp_path: Path) -> None:
    info = export_model(sklearn_trained, tmp_path, "digits-x")
    validated = validate_model(sklearn_trained, info, LENIENT, None)
    assert validated.decision.allowed
    assert validated.measurements.parity_max_abs_diff <= 1e-4


def test_validation_blocks_with_measured_value_and_threshold(
    sklearn_trained: Trained, tmp_path: Path,
) -> None:
    info = export_model(sklearn_trained, tmp_path, "digits-x")
    with pytest.raises(GateBlocked, match=r"test accuracy 0\.9\d+ < quality.min_accuracy 0.999"):
        validate_model(sklearn_trained, info, STRICT, None)


def test_validation_compares_with_the_champion_on_the_same_rows(
    sklearn_trained: Trained, torch_trained: Trained, tmp_path: Path,
) -> None:
    champion = export_model(sklearn_trained, tmp_path / "champ", "digits-x")
    candidate = export_model(torch_trained, tmp_path / "cand", "digits-x")
    validated = validate_model(torch_trained, candidate,
                               ModelPolicy(1e-4, 0.5, 1.0), ("7", champion.path))
    assert validated.measurements.champion_version == "7"
    assert validated.measurements.champion_accuracy == pytest.approx(0.9694, abs=0.02)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "models:/x", "-lead"])
def test_bad_model_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="model name"):
        check_model_name(name)


def test_git_sha_of_this_checkout() -> None:
    sha = git_sha()
    assert sha == "unknown" or len(sha.split("+")[0]) == 40
