"""The MARGINAL approval: an answer counts only with an approver's identity token, the approver
recorded is the identity the token names, and a refused answer leaves the run waiting."""

from __future__ import annotations

import pytest

from suite.people import Checked
from tasks.release import Approval, ask_approval
from tasks.report import ReleaseRecord

REC = ReleaseRecord("r1", "web", "canary", "local")


def verify(token: str | None) -> Checked:
    if token == "jwt-of-carol":
        return Checked("userpass:carol", "approver userpass:carol")
    return Checked(None, f"Vault refused {token!r}")


def answers(*given: Approval | None) -> tuple[list[tuple[str, int]], object]:
    asked: list[tuple[str, int]] = []
    queue = list(given)

    def pause(key: str, timeout_s: int) -> Approval | None:
        asked.append((key, timeout_s))
        return queue.pop(0)

    return asked, pause


def test_an_approvers_token_names_the_approver_whatever_else_the_answer_says() -> None:
    asked, pause = answers(Approval(decision="approve", identity_token="jwt-of-carol",
                                    reason="looks fine"))
    got = ask_approval(REC, 3, 600, verify, pause=pause)  # type: ignore[arg-type]
    assert got is not None and (got.decision, got.approver) == ("approve", "userpass:carol")
    assert asked == [("approval-r1-3", 600)]


@pytest.mark.parametrize("token", ["", "forged", "jwt-of-a-releaser"])
def test_an_answer_without_a_valid_token_is_refused_and_the_run_waits_again(token: str) -> None:
    now = [0.0]
    refused: list[str] = []
    asked, pause = answers(Approval(decision="approve", identity_token=token, reason="x"),
                           Approval(decision="rollback", identity_token="jwt-of-carol",
                                    reason="no"))

    def clock() -> float:
        now[0] += 100.0  # each look at the clock: 100 s later
        return now[0]

    got = ask_approval(REC, 2, 600, verify, refused.append, pause=pause,  # type: ignore[arg-type]
                       clock=clock)
    assert got is not None and (got.decision, got.approver) == ("rollback", "userpass:carol")
    assert refused == [f"Vault refused {token!r}"]
    assert [k for k, _ in asked] == ["approval-r1-2", "approval-r1-2-1"]
    assert asked[1][1] < asked[0][1] <= 600  # the second wait is only for the time left


def test_no_answer_in_time_is_none() -> None:
    _, pause = answers(None)
    assert ask_approval(REC, 1, 60, verify, pause=pause) is None  # type: ignore[arg-type]
