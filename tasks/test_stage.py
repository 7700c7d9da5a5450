"""Test stage: run the service's tests with pytest in a subprocess and read its JUnit XML.

The subprocess keeps the tests' imports, plugins and crashes away from the worker; the JUnit
file, not pytest's exit code alone, says what ran. No test collected is a failure too: a test
stage that ran nothing must not let a release through.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from suite.errors import ConfigError, GateBlocked
from suite.settings import Settings


@dataclass(frozen=True)
class TestFailure:
    test: str
    kind: str  # failure | error
    message: str


@dataclass(frozen=True)
class TestReport:
    __test__ = False  # not a pytest test class

    passed: int
    failed: int
    errors: int
    skipped: int
    junit_path: str
    seconds: float
    exit_code: int
    failures: tuple[TestFailure, ...] = ()

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def reasons(self) -> list[str]:
        out = [f"{f.kind} {f.test}: {f.message}" for f in self.failures]
        if self.total == 0 or (self.passed == 0 and not out):
            out.append(f"no test passed ({self.total} collected; pytest exit {self.exit_code})")
        elif self.exit_code not in (0, 1) and not out:
            out.append(f"pytest exited {self.exit_code} (interrupted or internal error)")
        return out

    @property
    def ok(self) -> bool:
        return not self.reasons()


def parse_junit(path: Path, exit_code: int = 0, seconds: float = 0.0) -> TestReport:
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"JUnit report {path} cannot be read: {exc}") from exc
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    passed = failed = errors = skipped = 0
    failures: list[TestFailure] = []
    for suite in suites:
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            bad = case.find("failure")
            err = case.find("error")
            if bad is not None:
                failed += 1
                failures.append(TestFailure(name, "failure", _msg(bad)))
            elif err is not None:
                errors += 1
                failures.append(TestFailure(name, "error", _msg(err)))
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return TestReport(passed, failed, errors, skipped, str(path), seconds, exit_code,
                      tuple(failures))


def _msg(node: ET.Element) -> str:
    lines = (node.text or "").strip().splitlines()
    return (node.get("message") or (lines[-1] if lines else ""))[:300]


def run_tests(
    paths: Sequence[str],
    *,
    cwd: Path,
    junit_path: Path,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
    timeout_s: float = 900.0,
) -> TestReport:
    """pytest ``paths`` in ``cwd`` in a subprocess; the result comes from the JUnit XML."""
    junit_path.parent.mkdir(parents=True, exist_ok=True)
    junit_path.unlink(missing_ok=True)
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit_path}",
            *extra_args, *paths]
    began = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise GateBlocked("test", [f"tests did not finish within {timeout_s:.0f}s"]) from exc
    seconds = round(time.monotonic() - began, 2)
    if not junit_path.exists():
        tail = " | ".join((proc.stdout + proc.stderr).splitlines()[-5:])
        return TestReport(0, 0, 1, 0, str(junit_path), seconds, proc.returncode,
                          (TestFailure("pytest", "error", f"no JUnit report written: {tail}"),))
    return parse_junit(junit_path, proc.returncode, seconds)


def enforce(report: TestReport) -> TestReport:
    if not report.ok:
        raise GateBlocked("test", report.reasons())
    return report


def markdown(report: TestReport) -> str:
    verdict = "PASSED" if report.ok else "BLOCKED"
    lines = [f"# Tests: {verdict}", "",
             "| passed | failed | errors | skipped | seconds |", "|---|---|---|---|---|",
             f"| {report.passed} | {report.failed} | {report.errors} | {report.skipped} | "
             f"{report.seconds} |", "", f"JUnit: `{report.junit_path}`"]
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- `{f.test}` ({f.kind}): {f.message}"
                                            for f in report.failures]
    return "\n".join(lines)


@task(name="test")
def test_task(
    paths: list[str], cwd: str, subject: str, settings: Settings | None = None
) -> TestReport:
    """Run, publish the artifact, audit, then block on failures."""
    from suite import audit
    from suite import settings as settings_mod

    settings = settings or settings_mod.load()
    junit = settings.dir("reports", "junit", f"{subject.replace('/', '_')}.xml")
    report = run_tests(paths, cwd=Path(cwd), junit_path=junit)
    create_markdown_artifact(key="test-report", markdown=markdown(report),
                             description=f"tests of {subject}")
    audit.append(settings, action="stage.test", subject=subject,
                 inputs={"paths": paths, "passed": report.passed, "failed": report.failed,
                         "errors": report.errors}, outcome="ok" if report.ok else "blocked")
    return enforce(report)
