"""Use cases: place a queued job on an offer (contract, escrow hold, attempt), or say why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flopex.domain import matching
from flopex.domain.ids import new_id
from flopex.domain.ledger import PLATFORM, Purpose, ledger_account_id
from flopex.domain.matching import OfferView, Placement, Verdict
from flopex.domain.signing import canonical_json, sha256_hex, sign_bytes
from flopex.domain.spec import JobSpec, parse_spec
from flopex.domain.states import AttemptState, JobState
from flopex.errors import InsufficientFunds
from flopex.service import log
from flopex.service.context import Context
from flopex.service.ports import Tx
from flopex.service.records import AttemptRec, ContractRec, Hold, JobRec, OfferRec, TransferRec

QUEUE_SCAN_LIMIT = 200


def rfc3339(ms: int) -> str:
    """RFC 3339 UTC timestamp of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def spec_now(job: JobRec) -> datetime:
    """The instant a job's relative fields (a ``6h`` deadline) were resolved against."""
    return datetime.fromtimestamp(job.created_ms / 1000, tz=UTC)


def spec_of(job: JobRec) -> JobSpec:
    """The stored (already validated) spec of a job."""
    return parse_spec(json.loads(job.spec), now=spec_now(job))


def offer_views(ctx: Context, tx: Tx, offers: list[OfferRec]) -> list[OfferView]:
    """Offers as placement sees them, with node liveness from the last heartbeat."""
    nodes = tx.nodes_seen(sorted({o.node_id for o in offers}))
    horizon = ctx.now_ms() - int(ctx.rules.lease_ttl_s * 1000)
    views = []
    for o in offers:
        node = nodes.get(o.node_id)
        alive = node is not None and node.last_seen_ms >= horizon and not node.draining
        views.append(
            OfferView(
                id=o.id,
                node_id=o.node_id,
                provider_id=o.account_id,
                accelerator=o.accelerator,
                devices_free=o.devices - o.used_devices,
                cpus_free=o.cpus - o.used_cpus,
                memory_free_bytes=o.memory_bytes - o.used_memory_bytes,
                devices_total=o.devices,
                cpus_total=o.cpus,
                memory_total_bytes=o.memory_bytes,
                region=o.region,
                price_ucr_per_device_hour=o.price_ucr_per_device_hour,
                interruptible=o.interruptible,
                node_alive=alive,
            )
        )
    return views


def judge_all(
    ctx: Context,
    tx: Tx,
    job: JobRec,
    spec: JobSpec,
    offers: list[OfferView],
    available_ucr: int | None = None,
) -> list[Verdict]:
    """A verdict per offer for this job, given the consumer's available balance now (read
    here unless the caller just read it in this transaction)."""
    available = available_ucr
    if available is None:
        available = tx.ledger.balances(job.account_id)[Purpose.AVAILABLE].available
    to_deadline = None
    if job.deadline_ms is not None:
        to_deadline = (job.deadline_ms - ctx.now_ms()) // 1000
    return [
        matching.judge(
            spec, o, ctx.rules.terms, seconds_to_deadline=to_deadline, available_ucr=available
        )
        for o in offers
    ]


def _contract_body(
    ctx: Context, job: JobRec, p: Placement, contract_id: str, attempt_id: str
) -> dict[str, object]:
    return {
        "id": contract_id,
        "job_id": job.id,
        "attempt_id": attempt_id,
        "offer_id": p.offer.id,
        "node_id": p.offer.node_id,
        "consumer_id": job.account_id,
        "provider_id": p.offer.provider_id,
        "region": p.offer.region,
        "accelerator": p.option.accelerator,
        "devices": p.devices,
        "cpus": p.option.cpus,
        "memory_bytes": p.option.memory_bytes,
        "price_ucr_per_device_hour": p.offer.price_ucr_per_device_hour,
        "hourly_ucr": p.hourly_ucr,
        "time_limit_s": p.time_limit_s,
        "hold_ucr": p.hold_total_ucr,
        "fee_bps": ctx.rules.fee_bps,
        "spec_sha256": sha256_hex(job.spec.encode()),
        "billing": "ceil(min(server claim->complete, node-signed ms) x hourly / 3600000) + fee",
        "created_at": rfc3339(ctx.now_ms()),
    }


def _bind(ctx: Context, tx: Tx, job: JobRec, p: Placement) -> bool:
    """Take capacity, hold escrow, sign the contract and create the attempt; False if lost."""
    if not tx.take_capacity(
        p.offer.id, p.option.accelerator_count, p.option.cpus, p.option.memory_bytes
    ):
        return False
    now = ctx.now_ms()
    attempt_id, contract_id = new_id("att"), new_id("ctr")
    try:
        held = _hold(ctx, tx, job, p, attempt_id)  # both holds or neither
    except InsufficientFunds:
        tx.release_capacity(
            p.offer.id, p.option.accelerator_count, p.option.cpus, p.option.memory_bytes
        )
        return False
    fee_id = held[1].id if len(held) > 1 else None
    for rec in held:
        log.transfer(ctx, tx, rec)
    body = _contract_body(ctx, job, p, contract_id, attempt_id)
    canonical = canonical_json(body)
    contract_idx = log.record(
        ctx,
        tx,
        "contract.signed",
        contract=contract_id,
        job=job.id,
        attempt=attempt_id,
        offer=p.offer.id,
        node=p.offer.node_id,
        consumer=job.account_id,
        provider=p.offer.provider_id,
        hourly_ucr=p.hourly_ucr,
        time_limit_s=p.time_limit_s,
        fee_bps=ctx.rules.fee_bps,
        hold_transfer=held[0].id,
        fee_transfer=fee_id,
        contract_sha256=sha256_hex(canonical),
    )
    tx.insert_contract(
        ContractRec(
            id=contract_id,
            job_id=job.id,
            attempt_id=attempt_id,
            consumer_id=job.account_id,
            provider_id=p.offer.provider_id,
            body=canonical.decode(),
            body_sha256=sha256_hex(canonical),
            signature=sign_bytes(ctx.key, canonical),
            created_ms=now,
            log_index=contract_idx,
        )
    )
    tx.insert_attempt(
        AttemptRec(
            id=attempt_id,
            job_id=job.id,
            offer_id=p.offer.id,
            node_id=p.offer.node_id,
            contract_id=contract_id,
            region=p.offer.region,
            state=AttemptState.MATCHED,
            lease_epoch=0,
            lease_expires_ms=now + int(ctx.rules.claim_ttl_s * 1000),
            devices=p.option.accelerator_count,
            cpus=p.option.cpus,
            memory_bytes=p.option.memory_bytes,
            hourly_ucr=p.hourly_ucr,
            time_limit_s=p.time_limit_s,
            hold_cost_id=f"hold:{attempt_id}",
            hold_fee_id=fee_id,
            cancel_requested=False,
            created_ms=now,
            claimed_ms=None,
            ended_ms=None,
            reason=None,
            exit_code=None,
            billed_ms=None,
            cost_ucr=None,
            fee_ucr=None,
            usage=None,
            usage_signature=None,
            log_index=contract_idx,
        )
    )
    tx.update_job(
        job.id, {JobState.QUEUED}, state=JobState.MATCHED, attempts=job.attempts + 1, updated_ms=now
    )
    return True


def _hold(ctx: Context, tx: Tx, job: JobRec, p: Placement, attempt_id: str) -> list[TransferRec]:
    """The escrow of a placement, all or nothing: the cost of its time limit, and the fee on it
    (pending transfers, logged next in this order, see :func:`_bind`)."""
    first_event = tx.next_log_index()
    consumer = ledger_account_id(job.account_id, Purpose.AVAILABLE)
    wanted = [(f"hold:{attempt_id}", p.offer.provider_id, Purpose.EARNINGS, p.hold_cost_ucr)]
    if p.hold_fee_ucr > 0:
        wanted.append((f"fee:{attempt_id}", PLATFORM, Purpose.FEES, p.hold_fee_ucr))
    holds = [
        Hold(
            id=transfer_id,
            debit_id=consumer,
            credit_id=ledger_account_id(owner, purpose),
            amount=amount,
            job_id=job.id,
            memo=f"escrow: {'cost' if purpose == Purpose.EARNINGS else 'fee'}",
            log_index=first_event + n,
        )
        for n, (transfer_id, owner, purpose, amount) in enumerate(wanted)
    ]
    return tx.ledger.hold_many(holds, now_ms=ctx.now_ms())


def try_match(
    ctx: Context,
    tx: Tx,
    job: JobRec,
    offers: list[OfferView],
    spec: JobSpec | None = None,
    available_ucr: int | None = None,
) -> str | None:
    """Place one queued job on the best feasible offer; returns the node id, or None."""
    spec = spec or spec_of(job)
    verdicts = judge_all(ctx, tx, job, spec, offers, available_ucr)
    for placement in matching.rank(verdicts, spec):
        if _bind(ctx, tx, job, placement):
            return placement.offer.node_id
    return None


def match_queued(ctx: Context, tx: Tx, limit: int = QUEUE_SCAN_LIMIT) -> set[str]:
    """Place the oldest queued jobs while capacity lasts; returns the nodes that got work."""
    woken: set[str] = set()
    queued = tx.queued_jobs(limit)
    if not queued:
        return woken
    for job in queued:
        views = [v for v in offer_views(ctx, tx, tx.offers()) if v.node_alive]
        if not any(v.cpus_free > 0 for v in views):
            break
        node_id = try_match(ctx, tx, job, views)
        if node_id is not None:
            woken.add(node_id)
    return woken
