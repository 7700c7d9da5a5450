"""Admission's own checks, pure: the digest rule and the signed source of the build."""

from __future__ import annotations

from pathlib import Path

from suite.settings import Settings
from tasks import admission, evidence

SHA = "a" * 40


def _deps(uri: str, commit: str) -> dict[str, dict[str, object]]:
    return {"source": {"uri": uri, "digest": {"gitCommit": commit}, "name": "source"}}


def test_a_tag_is_never_admitted(tmp_path: Path) -> None:
    report = admission.check(Settings(home=tmp_path), "127.0.0.1:5000/suite/app:v1",
                             commit=SHA, source="/src")
    assert not report.ok
    assert report.failures == ["digest: '127.0.0.1:5000/suite/app:v1' names no digest: a "
                               "release runs the image its build pushed, by digest "
                               "(repository@sha256:…), never a tag"]


def test_the_source_check_wants_the_releases_commit_and_checkout() -> None:
    ok = evidence._check_source(_deps(f"git+file:///src@{SHA}", SHA), SHA, "/src")
    assert ok.ok and ok.detail == f"commit {SHA[:12]} of /src"
    other = evidence._check_source(_deps(f"git+file:///src@{'b' * 40}", "b" * 40), SHA, "/src")
    assert not other.ok
    assert other.detail.startswith(f"built from commit {'b' * 12}, not the release's {SHA[:12]}")
    elsewhere = evidence._check_source(_deps(f"git+file:///fork@{SHA}", SHA), SHA, "/src")
    assert not elsewhere.ok and "/fork" in elsewhere.detail and "/src" in elsewhere.detail
    missing = evidence._check_source({}, SHA, "/src")
    assert not missing.ok and "(none)" in missing.detail and "(no source)" in missing.detail
