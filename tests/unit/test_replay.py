"""Replaying log events rebuilds balances and job states and stops at the first broken rule."""

from __future__ import annotations

from typing import Any

import pytest

from flopex.domain.replay import Replay, ReplayError


def _t(state: str, tid: str, amount: int, posted: int, debit: str = "a:avail") -> dict[str, Any]:
    return {
        "kind": f"transfer.{state}",
        "transfer": tid,
        "debit": debit,
        "credit": "p:earnings",
        "amount_ucr": amount,
        "posted_ucr": posted,
    }


def _mint(amount: int) -> dict[str, Any]:
    return _t("posted", "mint1", amount, amount, debit="platform:equity") | {"credit": "a:avail"}


def test_a_partial_post_moves_what_was_used_and_releases_the_rest() -> None:
    r = Replay()
    for i, e in enumerate([_mint(100), _t("pending", "h1", 40, 0), _t("posted", "h1", 40, 15)]):
        r.apply(i, e)
    r.check_invariants()
    assert r.balances["a:avail"].balance().available == 85
    assert r.balances["p:earnings"].balance().net_posted == 15
    assert r.balances["a:avail"].debits_pending == 0


@pytest.mark.parametrize(
    ("events", "bad_index", "words"),
    [
        ([_t("pending", "h", 5, 0), _t("pending", "h", 5, 0)], 1, "twice"),
        ([_t("pending", "h", 5, 0), _t("posted", "h", 5, 6)], 1, "posts 6 of 5"),
        ([_t("pending", "h", 5, 0), _t("posted", "h", 7, 5)], 1, "changed"),
        ([_t("pending", "h", 5, 0), _t("voided", "h", 5, 0), _t("posted", "h", 5, 5)], 2, "twice"),
        ([_t("voided", "h", 5, 0)], 0, "without being pending"),
        ([{"kind": "attempt.started", "job": "j", "attempt": "a"}], 0, "no open contract"),
        (
            [{"kind": "job.submitted", "job": "j"}, {"kind": "job.submitted", "job": "j"}],
            1,
            "twice",
        ),
    ],
)
def test_an_impossible_event_is_named_by_its_index(
    events: list[dict[str, Any]], bad_index: int, words: str
) -> None:
    r = Replay()
    with pytest.raises(ReplayError, match=words) as info:
        for i, e in enumerate(events):
            r.apply(i, e)
    assert info.value.index == bad_index


def test_money_from_nowhere_breaks_the_invariants() -> None:
    r = Replay()
    r.apply(0, _t("pending", "h", 50, 0))  # a user spends money it never had
    with pytest.raises(ReplayError, match="negative"):
        r.check_invariants()
