"""MLflow's aliases against the audit trail's moves (models.registry.audited): tables of
records and aliases, no server."""

from __future__ import annotations

import pytest

from models.registry import audited
from models.registry.champion import ChampionChange, lineage
from suite.audit.record import AuditRecord, digest


def rec(seq: int, action: str, subject: str, inputs: object = None,
        outcome: str = "ok") -> AuditRecord:
    return AuditRecord(seq=seq, time=f"2026-12-02T10:00:{seq:02d}Z", actor="alice",
                       action=action, subject=subject,
                       inputs_digest=digest(inputs if inputs is not None else {}),
                       outcome=outcome, prev_hash="0" * 64)


TRAIL = [
    rec(1, "model.register", "models:/digits/1"),
    rec(2, "model.promote", "models:/digits/1@champion"),
    rec(3, "model.register", "models:/digits/2"),
    rec(4, "model.promote", "models:/digits/2@champion"),
    rec(5, "model.register", "models:/digits/3"),
    rec(6, "model.rollback", "models:/digits/1@champion"),
    rec(7, "release.start", "hello"),
    rec(8, "model.promote", "models:/digits/3@champion", outcome="failed"),
]


def test_replaying_the_trail_gives_each_alias() -> None:
    exp = audited.expected(TRAIL)["digits"]
    assert (exp.champion, exp.champion_seq) == ("1", 6)
    assert (exp.challenger, exp.challenger_seq) == ("3", 5)  # v2 was promoted: v3 still waits
    assert audited.audited_lineage(exp) == ["1"]


@pytest.mark.parametrize(("have", "drifts"), [
    ({"digits": {"champion": "1", "challenger": "3"}}, []),
    ({"digits": {"champion": "3", "challenger": "3"}},
     ["champion of digits is v3 in MLflow, but the audit trail's last move (record 6) set v1; "
      "moved outside the suite"]),
    ({"digits": {"champion": "1"}},
     ["challenger of digits is unset in MLflow, but the audit trail's last move (record 5) set "
      "v3; moved outside the suite"]),
    ({}, ["champion of digits is unset in MLflow, but the audit trail's last move (record 6) "
          "set v1; moved outside the suite",
          "challenger of digits is unset in MLflow, but the audit trail's last move (record 5) "
          "set v3; moved outside the suite"]),
])
def test_an_alias_moved_in_mlflow_is_a_drift_naming_both_versions(
        have: dict[str, dict[str, str]], drifts: list[str]) -> None:
    assert [str(d) for d in audited.drift(audited.expected(TRAIL), have)] == drifts


def test_a_champion_set_on_a_model_the_trail_only_registered_is_a_drift() -> None:
    want = audited.expected([rec(1, "model.register", "models:/m/1")])
    (d,) = audited.drift(want, {"m": {"champion": "1", "challenger": "1"}})
    assert str(d) == ("champion of m is v1 in MLflow, but the audit trail never set it; moved "
                      "outside the suite")


def test_models_the_trail_never_mentions_are_listed_not_checked() -> None:
    want = audited.expected(TRAIL)
    have = {"digits": {"champion": "1", "challenger": "3"}, "other": {"champion": "4"},
            "bare": {}}
    assert audited.drift(want, have) == []
    assert audited.untracked(want, have) == ["other"]
    report = audited.AliasReport(1, (), ("other",))
    assert report.ok and "not in the audit trail" in report.lines()[1]


def test_undo_to_nothing_removes_the_champion() -> None:
    trail = [rec(1, "model.promote", "models:/m/1@champion"),
             rec(2, "model.undo", "models:/m@champion")]
    exp = audited.expected(trail)["m"]
    assert exp.champion is None and audited.audited_lineage(exp) == []
    assert audited.drift({"m": exp}, {"m": {}}) == []


def test_old_records_without_a_version_are_resolved_by_the_signed_inputs_digest() -> None:
    real = ChampionChange("t", "promote", None, "2", "alice", "first")
    forged = ChampionChange("t", "promote", None, "5", "alice", "first")
    old = [rec(1, "model.promote", "models:/m@champion",
               {"from": None, "to": "2", "reason": "first"})]
    assert audited.needs_tags(old) == {"m"}
    assert audited.expected(old, {"m": [real]})["m"].champion == "2"
    exp = audited.expected(old, {"m": [forged]})["m"]
    assert exp.champion == audited.UNRESOLVED
    (d,) = audited.drift({"m": exp}, {"m": {"champion": "5"}})
    assert "matches no champion.history tag" in str(d)


def test_history_tags_that_tell_another_story_are_a_mismatch() -> None:
    exp = audited.expected(TRAIL)["digits"]
    honest = [ChampionChange("t", "promote", None, "1", "a", "r"),
              ChampionChange("t", "promote", "1", "2", "a", "r"),
              ChampionChange("t", "rollback", "2", "1", "a", "r")]
    assert audited.lineage_mismatch("digits", lineage(honest), exp) is None
    forged = [*honest[:2], ChampionChange("t", "promote", "2", "3", "a", "r")]
    why = audited.lineage_mismatch("digits", lineage(forged), exp)
    assert why is not None and "lineage v1, v2, v3" in why and "(lineage v1)" in why
