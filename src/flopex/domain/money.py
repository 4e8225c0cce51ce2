"""Money rules: hourly cost, billed cost, fee, escrow hold and time limit (integer µcr only).

ARCHITECTURE "Money rules": cost = ceil(billed_ms × hourly / 3,600,000);
fee = cost × fee_bps // 10,000, paid by the consumer on top; hold = cost of the time limit + fee.
"""

from __future__ import annotations

from flopex.errors import RequestInvalid

MS_PER_HOUR = 3_600_000
BPS = 10_000
INT64_MAX = 2**63 - 1


def hourly_cost_ucr(price_ucr_per_device_hour: int, devices: int) -> int:
    """The job's whole hourly cost on an offer: price × devices it takes."""
    if price_ucr_per_device_hour <= 0 or devices <= 0:
        raise RequestInvalid("price and device count must be positive")
    return price_ucr_per_device_hour * devices


def cost_ucr(billed_ms: int, hourly_ucr: int) -> int:
    """Cost of ``billed_ms`` at ``hourly_ucr``, rounded up to the next µcr."""
    if billed_ms < 0:
        raise RequestInvalid("billed time cannot be negative")
    return -(-billed_ms * hourly_ucr // MS_PER_HOUR)


def fee_ucr(cost: int, fee_bps: int) -> int:
    """The platform fee on ``cost`` (rounded down), paid by the consumer on top of the cost."""
    return cost * fee_bps // BPS


def hold_ucr(hourly_ucr: int, time_limit_s: int, fee_bps: int) -> tuple[int, int]:
    """Escrow for a time limit: (cost hold, fee hold)."""
    cost = cost_ucr(time_limit_s * 1000, hourly_ucr)
    return cost, fee_ucr(cost, fee_bps)


def max_seconds_within(budget_ucr: int, hourly_ucr: int, fee_bps: int) -> int:
    """The longest whole number of seconds whose cost plus fee stays within ``budget_ucr``."""
    # cost + fee <= budget  <=>  cost <= budget * BPS / (BPS + fee_bps) (rounding fixed below)
    cost_cap = budget_ucr * BPS // (BPS + fee_bps)
    seconds = cost_cap * 3600 // hourly_ucr
    while seconds > 0 and sum(hold_ucr(hourly_ucr, seconds, fee_bps)) > budget_ucr:
        seconds -= 1
    return seconds


def time_limit_s(
    *,
    max_s: int | None,
    estimated_s: int | None,
    default_s: int,
    budget_ucr: int | None,
    seconds_to_deadline: int | None,
    hourly_ucr: int,
    fee_bps: int,
) -> int:
    """The attempt's wall-clock limit: max_hours, else 2 × estimate, else the default, capped by
    budget and deadline. Returns 0 when nothing fits (the offer is then infeasible)."""
    if max_s is not None:
        limit = max_s
    elif estimated_s is not None:
        limit = 2 * estimated_s
    else:
        limit = default_s
    if budget_ucr is not None:
        limit = min(limit, max_seconds_within(budget_ucr, hourly_ucr, fee_bps))
    if seconds_to_deadline is not None:
        limit = min(limit, max(seconds_to_deadline, 0))
    return max(limit, 0)


def billed_ms(server_seen_ms: int, agent_signed_ms: int, time_limit_ms: int) -> int:
    """Billed time: the smaller of the server's claim→complete and the agent's signed figure,
    never above the contract's time limit."""
    return max(0, min(server_seen_ms, agent_signed_ms, time_limit_ms))
