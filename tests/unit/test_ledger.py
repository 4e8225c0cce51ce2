"""The ledger rules: double entry, guarded accounts, two-phase transfers, idempotency."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flopex.domain.ledger import Ledger, TransferState, sums_to_zero
from flopex.errors import IdempotencyConflict, InsufficientFunds, InvalidTransition

EQUITY = "platform:equity"
FEES = "platform:fees"
USERS = ["a:available", "b:available", "c:earnings"]


def test_mint_moves_money_from_equity_and_sums_to_zero() -> None:
    ledger = Ledger()
    ledger.transfer("t1", EQUITY, "a:available", 500, pending=False)
    assert ledger.balances["a:available"].available == 500
    assert ledger.balances[EQUITY].net_posted == -500
    assert sums_to_zero(list(ledger.balances.values()))


def test_guarded_account_cannot_overdraw_and_nothing_changes() -> None:
    ledger = Ledger()
    ledger.transfer("t1", EQUITY, "a:available", 100, pending=False)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("t2", "a:available", "b:available", 101, pending=False)
    assert ledger.balances["a:available"].available == 100
    assert "t2" not in ledger.transfers


def test_pending_hold_reduces_available_and_partial_post_releases_the_rest() -> None:
    ledger = Ledger()
    ledger.transfer("mint", EQUITY, "a:available", 1000, pending=False)
    ledger.transfer("hold", "a:available", "c:earnings", 600, pending=True)
    assert ledger.balances["a:available"].available == 400
    with pytest.raises(InsufficientFunds):
        ledger.transfer("hold2", "a:available", "c:earnings", 401, pending=True)
    posted = ledger.resolve("hold", 250)
    assert posted.state == TransferState.POSTED
    assert ledger.balances["a:available"].available == 750
    assert ledger.balances["c:earnings"].net_posted == 250
    assert ledger.pending_count() == 0


def test_void_returns_everything_and_cannot_resolve_twice() -> None:
    ledger = Ledger()
    ledger.transfer("mint", EQUITY, "a:available", 1000, pending=False)
    ledger.transfer("hold", "a:available", "c:earnings", 600, pending=True)
    assert ledger.resolve("hold", None).state == TransferState.VOIDED
    assert ledger.balances["a:available"].available == 1000
    with pytest.raises(InvalidTransition):
        ledger.resolve("hold", 10)


def test_same_id_is_idempotent_and_a_different_reuse_is_refused() -> None:
    ledger = Ledger()
    first = ledger.transfer("mint", EQUITY, "a:available", 10, pending=False)
    again = ledger.transfer("mint", EQUITY, "a:available", 10, pending=False)
    assert first == again
    assert ledger.balances["a:available"].available == 10
    with pytest.raises(IdempotencyConflict):
        ledger.transfer("mint", EQUITY, "a:available", 11, pending=False)


op = st.one_of(
    st.tuples(st.just("mint"), st.sampled_from(USERS), st.integers(1, 10_000)),
    st.tuples(
        st.just("move"),
        st.sampled_from(USERS),
        st.sampled_from([*USERS, FEES]),
        st.integers(1, 10_000),
    ),
    st.tuples(
        st.just("hold"),
        st.sampled_from(USERS),
        st.sampled_from([*USERS, FEES]),
        st.integers(1, 10_000),
    ),
    st.tuples(st.just("resolve"), st.integers(0, 50), st.integers(0, 10_000)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60))
def test_any_sequence_keeps_balances_summing_to_zero_and_users_non_negative(
    ops: list[tuple],
) -> None:  # type: ignore[type-arg]
    ledger = Ledger()
    pending: list[str] = []
    for i, o in enumerate(ops):
        try:
            if o[0] == "mint":
                ledger.transfer(f"t{i}", EQUITY, o[1], o[2], pending=False)
            elif o[0] == "move" and o[1] != o[2]:
                ledger.transfer(f"t{i}", o[1], o[2], o[3], pending=False)
            elif o[0] == "hold" and o[1] != o[2]:
                ledger.transfer(f"t{i}", o[1], o[2], o[3], pending=True)
                pending.append(f"t{i}")
            elif o[0] == "resolve" and pending:
                tid = pending.pop(o[1] % len(pending))
                held = ledger.transfers[tid].amount
                ledger.resolve(tid, min(o[2], held) or None)
        except InsufficientFunds:
            pass
        balances = list(ledger.balances.values())
        assert sums_to_zero(balances)
        for account, b in ledger.balances.items():
            if account != EQUITY:
                assert b.available >= 0, account
    for tid in pending:
        ledger.resolve(tid, None)
    assert ledger.pending_count() == 0
    assert sums_to_zero(list(ledger.balances.values()))
