"""Test stage: a real pytest subprocess and its JUnit XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.errors import GateBlocked
from tasks.test_stage import enforce, run_tests


def _suite(tmp_path: Path, body: str) -> Path:
    (tmp_path / "test_sample.py").write_text(body)
    return tmp_path


def test_failures_are_counted_and_block(tmp_path: Path) -> None:
    src = _suite(tmp_path, "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n"
                           "\nimport pytest\n@pytest.mark.skip\ndef test_skip():\n    pass\n")
    report = run_tests(["test_sample.py"], cwd=src, junit_path=tmp_path / "out" / "j.xml")
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 1, 0, 1)
    assert report.exit_code == 1
    assert report.failures[0].test.endswith("test_bad")
    assert "assert 1 == 2" in report.failures[0].message
    with pytest.raises(GateBlocked, match=r"test gate blocked: failure .*test_bad"):
        enforce(report)


def test_passing_suite_passes(tmp_path: Path) -> None:
    src = _suite(tmp_path, "def test_ok():\n    pass\n")
    report = enforce(run_tests(["."], cwd=src, junit_path=tmp_path / "j.xml"))
    assert report.ok and report.passed == 1 and Path(report.junit_path).exists()


def test_no_tests_collected_blocks(tmp_path: Path) -> None:
    src = _suite(tmp_path, "x = 1\n")
    report = run_tests(["."], cwd=src, junit_path=tmp_path / "j.xml")
    assert report.exit_code == 5
    assert not report.ok
    assert "no test passed (0 collected" in report.reasons()[0]


def test_collection_error_is_an_error(tmp_path: Path) -> None:
    src = _suite(tmp_path, "import nonexistent_module_xyz\n\ndef test_a():\n    pass\n")
    report = run_tests(["."], cwd=src, junit_path=tmp_path / "j.xml")
    assert report.errors == 1 and not report.ok


def test_the_tests_never_see_the_workers_credentials(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A service's tests read no Vault token, Prefect auth string or MLflow login of the
    worker: only the allow-listed names (PATH, HOME, the locale...) reach them."""
    monkeypatch.setenv("VAULT_TOKEN", "s.worker-token")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "suite:secret")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2")
    src = _suite(tmp_path, "import os\n\ndef test_env():\n"
                           "    leaked = {'VAULT_TOKEN', 'PREFECT_API_AUTH_STRING',\n"
                           "              'MLFLOW_TRACKING_PASSWORD'} & set(os.environ)\n"
                           "    assert not leaked, leaked\n"
                           "    assert os.environ['PATH']\n")
    report = enforce(run_tests(["."], cwd=src, junit_path=tmp_path / "j.xml"))
    assert (report.passed, report.failed) == (1, 0)
