"""Test stage: the service's tests — its manifest's ``test.command`` in a container of the built
image (no network, no credential), or pytest in a subprocess read through its JUnit XML.

The subprocess keeps the tests' imports, plugins and crashes away from the worker; the JUnit
file, not pytest's exit code alone, says what ran. No test collected is a failure too: a test
stage that ran nothing must not let a release through.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from prefect import task
from prefect.artifacts import create_markdown_artifact

from suite.errors import ConfigError, GateBlocked, SuiteError
from suite.settings import CHILD_ENV_NAMES, Settings


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
    env: Mapping[str, str] | None = None,
) -> TestReport:
    """pytest ``paths`` in ``cwd`` in a subprocess; the result comes from the JUnit XML. The
    tests get ``env``, by default only the allow-listed names of this process's environment
    (``suite.settings.CHILD_ENV_NAMES``): never the worker's Vault, Prefect or MLflow
    credentials nor a cloud key, which the service's tests have no business reading."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k in CHILD_ENV_NAMES}
    junit_path.parent.mkdir(parents=True, exist_ok=True)
    junit_path.unlink(missing_ok=True)
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit_path}",
            *extra_args, *paths]
    began = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=timeout_s, env=dict(env))
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


_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")
_UNITTEST = re.compile(r"^Ran (\d+) tests?", re.M)
_UNITTEST_BAD = re.compile(r"FAILED \((.*)\)")


def counts_from_output(text: str, exit_code: int) -> tuple[int, int, int, int]:
    """(passed, failed, errors, skipped) from pytest's or unittest's summary; a command that
    prints neither counts as one test that passed or failed with its exit code."""
    found = dict.fromkeys(("passed", "failed", "error", "skipped"), 0)
    summary = [line for line in text.splitlines() if " in " in line and _COUNTS.search(line)]
    if summary:
        for number, kind in _COUNTS.findall(summary[-1]):
            found[kind.rstrip("s") if kind.startswith("error") else kind] += int(number)
        return found["passed"], found["failed"], found["error"], found["skipped"]
    ran = _UNITTEST.findall(text)
    if ran:
        total = int(ran[-1])
        bad = _UNITTEST_BAD.search(text)
        parts = dict(p.split("=") for p in bad.group(1).split(", ")) if bad else {}
        failed, errors = int(parts.get("failures", 0)), int(parts.get("errors", 0))
        skipped = int(parts.get("skipped", 0))
        return total - failed - errors - skipped, failed, errors, skipped
    return (1, 0, 0, 0) if exit_code == 0 else (0, 1, 0, 0)


def run_in_image(engine: docker.DockerClient, image: str, command: Sequence[str], *,
                 log_path: Path, timeout_s: float = 600.0,
                 memory_bytes: int = 1024**3) -> TestReport:
    """``command`` in a throw-away container of the built ``image``: no network, no platform
    credential, no mount; its output goes to ``log_path``. The exit code decides."""
    if not command:
        raise ConfigError("the manifest has no test.command (expected e.g. test: {command: "
                          "[\"python\", \"-m\", \"pytest\", \"-q\"]})")
    began = time.monotonic()
    try:
        # the command replaces the image's entrypoint too (as Kubernetes' `command` does)
        container = engine.containers.run(image, entrypoint=[command[0]],
                                          command=list(command[1:]), detach=True,
                                          network_mode="none", mem_limit=memory_bytes,
                                          pids_limit=512, labels={"suite.role": "test"})
    except docker.errors.APIError as exc:
        raise GateBlocked("test", [f"the test container of {image} did not start: "
                                   f"{exc.explanation or exc}"]) from exc
    try:
        try:
            status = container.wait(timeout=timeout_s)
            exit_code = int(status.get("StatusCode", 1))
        except Exception as exc:  # the SDK raises a requests timeout type
            container.kill()
            raise GateBlocked("test", [f"tests did not finish within {timeout_s:.0f}s"]) from exc
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(output)
    passed, failed, errors, skipped = counts_from_output(output, exit_code)
    failures: tuple[TestFailure, ...] = ()
    if exit_code != 0:
        tail = " | ".join(output.strip().splitlines()[-5:])[-300:]
        failures = (TestFailure(" ".join(command), "failure", f"exit {exit_code}: {tail}"),)
        failed = max(failed, 1)
    return TestReport(passed, failed, errors, skipped, str(log_path),
                      round(time.monotonic() - began, 2), exit_code if exit_code else 0, failures)


@task(name="test")
def container_test_task(image: str, command: list[str], timeout_s: float, subject: str,
                        settings: Settings | None = None) -> TestReport:
    """The manifest's test command inside the image: publish, audit, then block on failures."""
    from suite import audit
    from suite import engine as engine_mod
    from suite import settings as settings_mod

    settings = settings or settings_mod.load()
    log = settings.dir("reports", "tests", f"{subject.replace('/', '_')}.log")
    engine = engine_mod.client(settings)
    try:
        engine_mod.ensure_pulled(engine, settings, image)
    except SuiteError as exc:
        raise GateBlocked("test", [f"the test container of {image} did not start: {exc}"]
                          ) from exc
    report = run_in_image(engine, image, command, log_path=log,
                          timeout_s=timeout_s)
    create_markdown_artifact(key="test-report", markdown=markdown(report),
                             description=f"tests of {subject} in its image")
    audit.append(settings, action="stage.test", subject=subject,
                 inputs={"command": command, "image": image, "passed": report.passed,
                         "failed": report.failed, "exit": report.exit_code},
                 outcome="ok" if report.ok else "blocked")
    return enforce(report)
