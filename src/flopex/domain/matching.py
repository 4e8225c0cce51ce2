"""Immediate placement: which offers can take a job (and why not), and which is cheapest.

Feasibility first, with the reason each rejected offer failed, then the lowest expected cost
(price × devices × time limit). The scoring issue extends :func:`rank` with speed, transfer
time, carbon and reliability.
"""

from __future__ import annotations

from dataclasses import dataclass

from flopex.domain import money
from flopex.domain.spec import JobSpec, ResourceOption
from flopex.domain.units import format_credits


@dataclass(frozen=True)
class OfferView:
    """An offer as placement sees it: capacity left, price, place, node liveness."""

    id: str
    node_id: str
    provider_id: str
    accelerator: str | None
    devices_free: int
    cpus_free: int
    memory_free_bytes: int
    devices_total: int
    cpus_total: int
    memory_total_bytes: int
    region: str
    price_ucr_per_device_hour: int
    interruptible: bool
    node_alive: bool


@dataclass(frozen=True)
class Placement:
    """A feasible (option, offer) pair with its terms."""

    offer: OfferView
    option: ResourceOption
    devices: int  # devices the job takes: accelerators, or cpus for CPU-only work
    hourly_ucr: int
    time_limit_s: int
    hold_cost_ucr: int
    hold_fee_ucr: int

    @property
    def hold_total_ucr(self) -> int:
        """What escrow holds for this placement."""
        return self.hold_cost_ucr + self.hold_fee_ucr


@dataclass(frozen=True)
class Verdict:
    """Why one offer was or was not chosen for a job."""

    offer_id: str
    feasible: bool
    reasons: tuple[str, ...]
    placement: Placement | None = None


@dataclass(frozen=True)
class Terms:
    """Exchange settings that shape every placement."""

    fee_bps: int
    default_time_limit_s: int


def _option_rejections(spec: JobSpec, option: ResourceOption, offer: OfferView) -> list[str]:
    reasons: list[str] = []
    if option.accelerator is not None:
        if offer.accelerator != option.accelerator:
            have = offer.accelerator or "no accelerator (CPU only)"
            reasons.append(f"needs {option.accelerator}, offer has {have}")
        elif offer.devices_total < option.accelerator_count:
            reasons.append(
                f"needs {option.accelerator_count} devices, offer has {offer.devices_total}"
            )
        elif offer.devices_free < option.accelerator_count:
            reasons.append(f"busy: {offer.devices_free} of {offer.devices_total} devices free")
    if offer.cpus_total < option.cpus:
        reasons.append(f"needs {option.cpus} cpus, offer has {offer.cpus_total}")
    elif offer.cpus_free < option.cpus:
        reasons.append(f"busy: {offer.cpus_free} of {offer.cpus_total} cpus free")
    if offer.memory_total_bytes < option.memory_bytes:
        reasons.append(
            f"needs {option.memory_bytes / 2**30:g} GiB memory, "
            f"offer has {offer.memory_total_bytes / 2**30:g}"
        )
    elif offer.memory_free_bytes < option.memory_bytes:
        reasons.append("busy: not enough free memory")
    if option.region is not None and offer.region != option.region:
        reasons.append(f"region {offer.region} is not {option.region}")
    if spec.data_residency is not None and offer.region not in spec.data_residency:
        reasons.append(f"region {offer.region} outside data residency {list(spec.data_residency)}")
    if offer.interruptible and not option.interruptible_ok:
        reasons.append("offer is interruptible and the job does not set use_spot")
    return reasons


def devices_taken(option: ResourceOption) -> int:
    """Devices a job is charged for: its accelerators, or its cpus for CPU-only work."""
    return option.accelerator_count if option.accelerator is not None else option.cpus


def _terms_of(
    spec: JobSpec,
    option: ResourceOption,
    offer: OfferView,
    terms: Terms,
    seconds_to_deadline: int | None,
) -> tuple[Placement | None, str | None]:
    devices = devices_taken(option)
    hourly = money.hourly_cost_ucr(offer.price_ucr_per_device_hour, devices)
    if spec.max_price_ucr_per_hour is not None and hourly > spec.max_price_ucr_per_hour:
        return None, (
            f"price {format_credits(hourly)}/h above cap "
            f"{format_credits(spec.max_price_ucr_per_hour)}/h"
        )
    limit = money.time_limit_s(
        max_s=spec.max_s,
        estimated_s=spec.estimated_s,
        default_s=terms.default_time_limit_s,
        budget_ucr=spec.budget_ucr,
        seconds_to_deadline=seconds_to_deadline,
        hourly_ucr=hourly,
        fee_bps=terms.fee_bps,
    )
    if limit <= 0:
        return None, "budget or deadline leaves no time at this price"
    if spec.estimated_s is not None and limit < spec.estimated_s:
        return None, (
            f"budget or deadline allows {limit} s at this price, job is estimated at "
            f"{spec.estimated_s} s"
        )
    cost, fee = money.hold_ucr(hourly, limit, terms.fee_bps)
    return Placement(offer, option, devices, hourly, limit, cost, fee), None


def judge(
    spec: JobSpec,
    offer: OfferView,
    terms: Terms,
    *,
    seconds_to_deadline: int | None,
    available_ucr: int | None,
) -> Verdict:
    """Whether ``offer`` can take ``spec`` now, with the reasons when it cannot."""
    if not offer.node_alive:
        return Verdict(offer.id, False, ("node is offline",))
    best: Placement | None = None
    reasons: list[str] = []
    for option in spec.options:
        rejected = _option_rejections(spec, option, offer)
        if not rejected:
            placement, why = _terms_of(spec, option, offer, terms, seconds_to_deadline)
            if placement is None and why is not None:
                rejected = [why]
            elif placement is not None:
                if available_ucr is not None and placement.hold_total_ucr > available_ucr:
                    rejected = [
                        f"hold {format_credits(placement.hold_total_ucr)} exceeds available "
                        f"{format_credits(available_ucr)}"
                    ]
                elif best is None or placement.hourly_ucr < best.hourly_ucr:
                    best = placement
        reasons.extend(r for r in rejected if r not in reasons)
    if best is not None:
        return Verdict(offer.id, True, (), best)
    return Verdict(offer.id, False, tuple(reasons))


def rank(verdicts: list[Verdict], spec: JobSpec) -> list[Placement]:
    """Feasible placements, best first: preference order (``ordered``), then expected cost."""
    placements = [v.placement for v in verdicts if v.placement is not None]

    def key(p: Placement) -> tuple[int, int, int, str]:
        preference = spec.options.index(p.option) if spec.ordered else 0
        return (preference, p.hourly_ucr, -p.offer.devices_free, p.offer.id)

    return sorted(placements, key=key)
