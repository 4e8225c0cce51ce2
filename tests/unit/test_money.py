"""Money rules: cost rounds up, fee rounds down, holds and time limits respect budgets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flopex.domain import money


def test_cost_rounds_up_to_the_next_microcredit() -> None:
    assert money.cost_ucr(1, 3_600_000) == 1
    assert money.cost_ucr(1, 1) == 1
    assert money.cost_ucr(0, 5_000_000) == 0
    assert money.cost_ucr(3_600_000, 2_000_000) == 2_000_000


def test_fee_is_basis_points_rounded_down() -> None:
    assert money.fee_ucr(1_000_000, 500) == 50_000
    assert money.fee_ucr(19, 500) == 0


def test_hourly_cost_is_price_times_devices() -> None:
    assert money.hourly_cost_ucr(1_500_000, 8) == 12_000_000


def test_time_limit_prefers_max_hours_then_twice_the_estimate_then_default() -> None:
    common = {"budget_ucr": None, "seconds_to_deadline": None, "hourly_ucr": 1, "fee_bps": 0}
    assert money.time_limit_s(max_s=10, estimated_s=100, default_s=1000, **common) == 10
    assert money.time_limit_s(max_s=None, estimated_s=100, default_s=1000, **common) == 200
    assert money.time_limit_s(max_s=None, estimated_s=None, default_s=1000, **common) == 1000


def test_time_limit_is_capped_by_deadline() -> None:
    limit = money.time_limit_s(
        max_s=None,
        estimated_s=None,
        default_s=3600,
        budget_ucr=None,
        seconds_to_deadline=60,
        hourly_ucr=1_000_000,
        fee_bps=500,
    )
    assert limit == 60


@given(
    budget=st.integers(1, 10**12),
    hourly=st.integers(1, 10**10),
    fee_bps=st.integers(0, 10_000),
)
def test_hold_for_the_budget_capped_time_never_exceeds_the_budget(
    budget: int, hourly: int, fee_bps: int
) -> None:
    seconds = money.max_seconds_within(budget, hourly, fee_bps)
    assert sum(money.hold_ucr(hourly, seconds, fee_bps)) <= budget
    # the cap is tight: one more second would not fit
    assert sum(money.hold_ucr(hourly, seconds + 1, fee_bps)) > budget or money.cost_ucr(
        (seconds + 1) * 1000, hourly
    ) > budget * 10_000 // (10_000 + fee_bps)


def test_billed_time_is_the_smallest_of_server_agent_and_limit() -> None:
    assert money.billed_ms(5_000, 4_000, 10_000) == 4_000
    assert money.billed_ms(5_000, 9_000, 10_000) == 5_000
    assert money.billed_ms(50_000, 90_000, 10_000) == 10_000
    assert money.billed_ms(-5, 10, 10) == 0
