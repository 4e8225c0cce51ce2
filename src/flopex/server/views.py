"""Records to wire models (the one place the API's shapes are filled in)."""

from __future__ import annotations

import json

from flopex.domain import money
from flopex.domain.ledger import Balance, Purpose
from flopex.domain.matching import Verdict
from flopex.domain.states import AttemptState
from flopex.protocol import (
    Account,
    Attempt,
    Balances,
    Job,
    LogChunk,
    Node,
    Offer,
    OfferVerdict,
    Transfer,
)
from flopex.service.jobs import JobView
from flopex.service.placement import rfc3339
from flopex.service.records import (
    AccountRec,
    AttemptRec,
    LogRec,
    NodeRec,
    OfferRec,
    TransferRec,
)


def _t(ms: int | None) -> str | None:
    return None if ms is None else rfc3339(ms)


def account(rec: AccountRec) -> Account:
    return Account(
        id=rec.id,
        name=rec.name,
        roles=list(rec.roles),
        created_at=rfc3339(rec.created_ms),
        log_index=rec.log_index,
    )


def balances(rec: AccountRec, b: dict[Purpose, Balance]) -> Balances:
    avail = b.get(Purpose.AVAILABLE, Balance())
    earn = b.get(Purpose.EARNINGS, Balance())
    return Balances(
        account=account(rec),
        available_ucr=avail.available,
        held_ucr=avail.debits_pending,
        earnings_ucr=earn.net_posted,
    )


def transfer(rec: TransferRec) -> Transfer:
    return Transfer(
        id=rec.id,
        debit_account_id=rec.debit_account_id,
        credit_account_id=rec.credit_account_id,
        amount_ucr=rec.amount,
        posted_ucr=rec.posted_amount,
        kind=rec.kind,
        state=rec.state,
        job_id=rec.job_id,
        memo=rec.memo,
        created_at=rfc3339(rec.created_ms),
        log_index=rec.log_index,
        resolved_log_index=rec.resolved_log_index,
    )


def node(rec: NodeRec) -> Node:
    return Node(
        id=rec.id,
        account_id=rec.account_id,
        public_key=rec.public_key,
        hardware=json.loads(rec.hardware),
        region=rec.region,
        simulated=rec.simulated,
        created_at=rfc3339(rec.created_ms),
        last_seen_at=rfc3339(rec.last_seen_ms),
        draining=rec.draining,
        log_index=rec.log_index,
    )


def offer(rec: OfferRec, online: bool) -> Offer:
    return Offer(
        id=rec.id,
        node_id=rec.node_id,
        account_id=rec.account_id,
        accelerator=rec.accelerator,
        devices=rec.devices,
        cpus=rec.cpus,
        memory_bytes=rec.memory_bytes,
        region=rec.region,
        price_ucr_per_device_hour=rec.price_ucr_per_device_hour,
        interruptible=rec.interruptible,
        simulated=rec.simulated,
        active=rec.active,
        devices_free=rec.devices - rec.used_devices,
        cpus_free=rec.cpus - rec.used_cpus,
        memory_free_bytes=rec.memory_bytes - rec.used_memory_bytes,
        node_online=online,
        created_at=rfc3339(rec.created_ms),
        log_index=rec.log_index,
    )


def attempt(rec: AttemptRec) -> Attempt:
    return Attempt(
        id=rec.id,
        node_id=rec.node_id,
        offer_id=rec.offer_id,
        contract_id=rec.contract_id,
        region=rec.region,
        state=rec.state,
        lease_epoch=rec.lease_epoch,
        reason=rec.reason,
        exit_code=rec.exit_code,
        created_at=rfc3339(rec.created_ms),
        claimed_at=_t(rec.claimed_ms),
        ended_at=_t(rec.ended_ms),
        hourly_ucr=rec.hourly_ucr,
        time_limit_s=rec.time_limit_s,
        billed_ms=rec.billed_ms,
        cost_ucr=rec.cost_ucr,
        fee_ucr=rec.fee_ucr,
        log_index=rec.log_index,
    )


def job(view: JobView, now_ms: int) -> Job:
    j = view.job
    last = view.attempts[-1] if view.attempts else None
    running = 0
    if last is not None and last.state == AttemptState.RUNNING and last.claimed_ms is not None:
        elapsed = min(max(now_ms - last.claimed_ms, 0), last.time_limit_s * 1000)
        running = money.cost_ucr(elapsed, last.hourly_ucr)
    return Job(
        id=j.id,
        name=j.name,
        kind=j.kind,
        state=j.state,
        reason=j.reason,
        spec=json.loads(j.spec),
        workdir_sha256=j.workdir_sha256,
        attempts=[attempt(a) for a in view.attempts],
        max_attempts=j.max_attempts,
        node_id=last.node_id if last else None,
        region=last.region if last else None,
        cost_ucr=j.cost_ucr,
        fee_ucr=j.fee_ucr,
        running_cost_ucr=j.cost_ucr + running,
        created_at=rfc3339(j.created_ms),
        updated_at=rfc3339(j.updated_ms),
        settled_at=_t(j.settled_ms),
        log_index=j.log_index,
    )


def verdict(v: Verdict, rec: OfferRec, chosen: bool) -> OfferVerdict:
    p = v.placement
    return OfferVerdict(
        offer_id=rec.id,
        node_id=rec.node_id,
        region=rec.region,
        accelerator=rec.accelerator,
        price_ucr_per_device_hour=rec.price_ucr_per_device_hour,
        feasible=v.feasible,
        chosen=chosen,
        reasons=list(v.reasons),
        hourly_ucr=p.hourly_ucr if p else None,
        hold_ucr=p.hold_total_ucr if p else None,
    )


def log_chunk(rec: LogRec) -> LogChunk:
    return LogChunk(
        id=rec.id,
        attempt_id=rec.attempt_id,
        seq=rec.seq,
        data=rec.data,
        created_at=rfc3339(rec.created_ms),
    )
