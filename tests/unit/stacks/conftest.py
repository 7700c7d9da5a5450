"""Fixtures of the stack tests."""

from __future__ import annotations

import pytest

from stacks import mocks


@pytest.fixture
def fresh_mocks() -> mocks.Recorder:
    """Mocks of this test only (each module installs its own at import; pytest imports all)."""
    return mocks.install()
