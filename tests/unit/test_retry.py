"""Write use cases that lose a race are run again, a bounded number of times."""

from __future__ import annotations

import pytest

from flopex.errors import InvalidTransition, TransientConflict
from flopex.service.retry import MAX_TRIES, retrying


def test_a_lost_race_is_retried_until_it_succeeds() -> None:
    calls: list[int] = []

    @retrying
    def use_case(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise TransientConflict("deadlock detected")
        return x * 2

    assert use_case(21) == 42
    assert calls == [21, 21, 21]


def test_retries_are_bounded_and_the_last_error_reaches_the_caller() -> None:
    calls = 0

    @retrying
    def always_loses() -> None:
        nonlocal calls
        calls += 1
        raise TransientConflict("deadlock detected")

    with pytest.raises(TransientConflict):
        always_loses()
    assert calls == MAX_TRIES


def test_other_errors_are_not_retried() -> None:
    calls = 0

    @retrying
    def refused() -> None:
        nonlocal calls
        calls += 1
        raise InvalidTransition("job is already cancelled")

    with pytest.raises(InvalidTransition):
        refused()
    assert calls == 1
