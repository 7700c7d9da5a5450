from __future__ import annotations

import numpy as np
import pytest

from models.data import N_CLASSES, N_FEATURES, load_split
from suite.errors import ConfigError


def test_split_is_the_same_for_the_same_seed() -> None:
    a, b = load_split(3), load_split(3)
    assert a.digest == b.digest
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)


def test_split_differs_for_another_seed() -> None:
    assert load_split(0).digest != load_split(1).digest


def test_split_is_disjoint_stratified_and_typed() -> None:
    s = load_split(0)
    assert s.sizes() == {"train": 1077, "val": 360, "test": 360}
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert s.x_train.shape[1] == N_FEATURES
    assert set(np.unique(s.y_test)) == set(range(N_CLASSES))
    rows = {r.tobytes() for r in s.x_test}
    overlap = sum(r.tobytes() in rows for r in s.x_train)
    assert overlap <= 2  # load_digits has a couple of duplicate images; splits are by row


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.2, 1.0), (0.5, 0.5), (-0.1, 0.2)])
def test_bad_fractions_are_a_config_error(val: float, test: float) -> None:
    with pytest.raises(ConfigError, match="split fractions"):
        load_split(0, val_fraction=val, test_fraction=test)
