"""The champion move is one unit with its audit record: any failure leaves the alias as it was,
and a release's compensation (`undo`) puts it back. MLflow is a fake of the few client calls
the module makes; the audit trail is replaced by a recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from models.registry import champion
from models.registry.champion import ChampionChange

NAME = "digits"


@dataclass
class FakeRegistry:
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    version_tags: dict[tuple[str, str], str] = field(default_factory=dict)
    fail_version_tag: bool = False

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self.tags[key] = value

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        del self.tags[key]

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias, None)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        if self.fail_version_tag:
            raise RuntimeError("connection reset by MLflow")
        self.version_tags[version, key] = value

    def get_registered_model(self, name: str) -> Any:
        return SimpleNamespace(tags=dict(self.tags))

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(version=version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        if alias not in self.aliases:
            raise MlflowException("no alias", error_code=RESOURCE_DOES_NOT_EXIST)
        return SimpleNamespace(version=self.aliases[alias])


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry(aliases={"champion": "1"})
    monkeypatch.setattr(champion, "client", lambda uri: fake)
    return fake


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    monkeypatch.setattr(champion.audit, "append", lambda settings, **kw: records.append(kw))
    monkeypatch.setattr(champion.audit, "default_actor", lambda: "tester")
    return records


SETTINGS: Any = SimpleNamespace(mlflow_uri="http://127.0.0.1:1")


@pytest.mark.parametrize("failure", [ValueError("not ours"), KeyboardInterrupt()])
def test_champion_move_undone_on_any_audit_failure(
        registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch,
        failure: BaseException) -> None:
    def broken(settings: Any, **kw: Any) -> None:
        raise failure

    monkeypatch.setattr(champion.audit, "append", broken)
    monkeypatch.setattr(champion.audit, "default_actor", lambda: "tester")
    with pytest.raises(type(failure)):
        champion.promote(SETTINGS, NAME, "2")
    assert registry.aliases == {"champion": "1"}
    assert not [k for k in registry.tags if k.startswith(champion.HISTORY_PREFIX)]


def test_champion_move_undone_when_mlflow_fails_midway(
        registry: FakeRegistry, audited: list[dict[str, Any]]) -> None:
    registry.fail_version_tag = True
    with pytest.raises(RuntimeError, match="connection reset"):
        champion.promote(SETTINGS, NAME, "2")
    assert registry.aliases == {"champion": "1"} and audited == []


def test_undo_gives_the_alias_back_with_an_audited_rollback(
        registry: FakeRegistry, audited: list[dict[str, Any]]) -> None:
    change = champion.promote(SETTINGS, NAME, "2", reason="release r1")
    assert registry.aliases["champion"] == "2"
    undone = champion.undo(SETTINGS, NAME, change, reason="release r1 not completed")
    assert undone is not None and registry.aliases["champion"] == "1"
    assert [r["action"] for r in audited] == ["model.promote", "model.rollback"]
    assert champion.lineage(champion._history(registry, NAME)) == ["1"]


def test_undo_of_a_first_champion_removes_the_alias_and_its_entry(
        registry: FakeRegistry, audited: list[dict[str, Any]]) -> None:
    registry.aliases.clear()
    change = champion.promote(SETTINGS, NAME, "1")
    champion.undo(SETTINGS, NAME, change)
    assert registry.aliases == {}
    assert not [k for k in registry.tags if k.startswith(champion.HISTORY_PREFIX)]
    assert audited[-1]["action"] == "model.undo" and audited[-1]["inputs"]["to"] is None


def test_undo_leaves_an_alias_someone_else_moved_since(
        registry: FakeRegistry, audited: list[dict[str, Any]]) -> None:
    change = ChampionChange("t", "promote", "1", "2", "a", "r")
    registry.aliases["champion"] = "3"
    assert champion.undo(SETTINGS, NAME, change) is None
    assert registry.aliases["champion"] == "3" and audited == []
