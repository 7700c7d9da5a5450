from __future__ import annotations

import pytest

from models.registry.champion import ChampionChange, lineage


def c(action: str, to: str, frm: str | None = None) -> ChampionChange:
    return ChampionChange(time="t", action=action, from_version=frm, to_version=to,
                          actor="a", reason="r")


@pytest.mark.parametrize(("changes", "stack"), [
    ([], []),
    ([c("promote", "1")], ["1"]),
    ([c("promote", "1"), c("promote", "2", "1"), c("promote", "3", "2")], ["1", "2", "3"]),
    ([c("promote", "1"), c("promote", "2", "1"), c("rollback", "1", "2")], ["1"]),
    ([c("promote", "1"), c("promote", "2", "1"), c("promote", "3", "2"),
      c("rollback", "2", "3"), c("rollback", "1", "2")], ["1"]),
    ([c("promote", "1"), c("promote", "2", "1"), c("rollback", "1", "2"),
      c("promote", "3", "1")], ["1", "3"]),
    ([c("promote", "1"), c("promote", "2", "1"), c("promote", "1", "2")], ["1", "2", "1"]),
])
def test_lineage_replays_promotions_and_rollbacks(
    changes: list[ChampionChange], stack: list[str],
) -> None:
    assert lineage(changes) == stack


def test_change_round_trips_through_json() -> None:
    change = c("promote", "2", "1")
    assert ChampionChange.from_json(change.to_json()) == change
