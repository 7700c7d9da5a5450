"""Engine helper: push errors hidden in the stream, references, DOCKER_HOST."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from suite import engine
from suite.errors import ConfigError, ProviderError, ServiceUnavailable
from suite.settings import Settings, load


class FakeAPI:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def push(self, repository: str, **_: Any) -> Iterator[dict[str, Any]]:
        return iter(self.chunks)


class FakeEngine:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.api = FakeAPI(chunks)


def test_push_fails_on_error_detail_in_stream() -> None:
    chunks: list[dict[str, Any]] = [{"status": "The push refers to repository [r/x]"},
              {"errorDetail": {"message": "connection refused"}, "error": "connection refused"}]
    with pytest.raises(ProviderError, match="push of r/x:1 failed: connection refused"):
        engine.push(FakeEngine(chunks), "r/x", "1")


def test_push_passes_a_clean_stream() -> None:
    log = engine.push(FakeEngine([{"status": "1: digest: sha256:ab size: 3"}]),
                      "r/x", "1")
    assert log == ["1: digest: sha256:ab size: 3"]


DIGEST = "sha256:" + "e8" * 32


def test_the_pushed_digest_is_the_one_the_push_reported() -> None:
    """podman 4.3 ends its push stream with ``TAG: digest: sha256:… size: N`` (as Docker)."""
    log = engine.push(FakeEngine([
        {"status": "The push refers to repository [r/x:t1]"},
        {"status": f"other: digest: sha256:{'00' * 32} size: 1"},  # another tag's line
        {"status": f"t1: digest: {DIGEST} size: 739"}]), "r/x", "t1")
    assert engine.pushed_digest(log, "r/x", "t1") == DIGEST


@pytest.mark.parametrize("lines", [
    [], ["The push refers to repository [r/x:t1]"], ["t1: digest: sha256:ab size: 3"],
    [f"t2: digest: {DIGEST} size: 3"],
])
def test_a_push_without_its_digest_is_an_error(lines: list[str]) -> None:
    with pytest.raises(ProviderError, match=r"push of r/x:t1 reported no digest"):
        engine.pushed_digest(lines, "r/x", "t1")


def test_a_build_pins_the_digest_its_push_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry is asked for the tag only as a cross-check; it agrees here."""
    asked: list[tuple[str, str]] = []

    def served(repository: str, tag: str, **_: Any) -> str:
        asked.append((repository, tag))
        return DIGEST

    monkeypatch.setattr(engine, "registry_digest", served)
    pushed = engine.push_pinned(FakeEngine([{"status": f"t1: digest: {DIGEST} size: 739"}]),
                                "r/x", "t1")
    assert pushed == DIGEST
    assert asked == [("r/x", "t1")]


def test_a_tag_moved_between_push_and_read_back_refuses_the_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = "sha256:" + "0c" * 32
    monkeypatch.setattr(engine, "registry_digest", lambda *_, **__: other)
    with pytest.raises(ProviderError) as refused:
        engine.push_pinned(FakeEngine([{"status": f"t1: digest: {DIGEST} size: 739"}]),
                           "r/x", "t1")
    message = str(refused.value)
    assert f"push of r/x:t1 reported {DIGEST}" in message
    assert f"now serves {other}" in message
    assert "pushed over it" in message


@pytest.mark.parametrize(("ref", "expected"), [
    ("127.0.0.1:5000/suite/app:abc", ("127.0.0.1:5000/suite/app", "abc")),
    ("127.0.0.1:5000/suite/app", ("127.0.0.1:5000/suite/app", "latest")),
    ("127.0.0.1:5000/suite/app@sha256:ff", ("127.0.0.1:5000/suite/app", "sha256:ff")),
    ("localhost/suite-base:bookworm", ("localhost/suite-base", "bookworm")),
])
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert engine.split_ref(ref) == expected


def test_registry_digest_needs_a_registry_host() -> None:
    with pytest.raises(ConfigError, match="names no registry"):
        engine.registry_digest("suite/app", "1")


def test_docker_host_wins_over_the_platform_socket(tmp_path: Path) -> None:
    settings = load({"SUITE_HOME": str(tmp_path), "DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert engine.engine_url(settings) == "tcp://127.0.0.1:2375"
    plain = Settings(home=tmp_path)
    assert engine.engine_url(plain) == f"unix://{tmp_path}/engine/podman.sock"


def test_client_says_how_to_start_the_engine(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="suite up"):
        engine.client(Settings(home=tmp_path))
