"""Ending an attempt: exactly once, money settled by its reason, capacity freed, job moved on."""

from __future__ import annotations

import json
from typing import Any

from flopex.domain import money
from flopex.domain.states import CONSUMER_PAYS, JobState, Reason, job_state_after
from flopex.domain.usage import UsageReport
from flopex.service import log
from flopex.service.context import Context
from flopex.service.ports import Tx
from flopex.service.records import AttemptRec, JobRec, TransferRec


def end_attempt(
    ctx: Context,
    tx: Tx,
    attempt: AttemptRec,
    reason: Reason,
    *,
    billed_ms: int,
    epoch: int | None,
    signed: tuple[UsageReport, str] | None = None,
    job: JobRec | None = None,
    **extra: Any,
) -> bool:
    """Close ``attempt`` with ``reason``: post used time or void the hold, free the capacity and
    move the job on. False (and nothing changed) if the attempt was already closed or fenced.

    ``signed``: the node's usage report and signature, logged as they are so that anyone can
    check the node signed what it was paid for. ``job``: the attempt's job as the caller just
    read it in this transaction (saves a read)."""
    now = ctx.now_ms()
    payload = signed[0].payload() if signed is not None else None  # built once: it hashes
    if signed is not None:
        extra |= {"usage": json.dumps(payload, sort_keys=True), "usage_signature": signed[1]}
    if not tx.end_attempt(
        attempt.id, expect=attempt.state, epoch=epoch, ended_ms=now, reason=reason, **extra
    ):
        return False
    # Lock order offers -> ledger, as placement takes them, so that concurrent placements and
    # settlements on PostgreSQL do not deadlock.
    tx.release_capacity(attempt.offer_id, attempt.devices, attempt.cpus, attempt.memory_bytes)
    cost, fee = _settle(ctx, tx, attempt, reason, billed_ms)
    tx.update_attempt_money(attempt.id, billed_ms=billed_ms, cost_ucr=cost, fee_ucr=fee)
    job = job if job is not None and job.id == attempt.job_id else tx.get_job(attempt.job_id)
    assert job is not None
    job_reason = reason  # the attempt keeps the reason it was billed by
    if attempt.cancel_requested and reason not in (Reason.COMPLETED, Reason.JOB_ERROR):
        job_reason = Reason.USER_CANCELLED
    state, final = job_state_after(job_reason, attempts_left=job.attempts < job.max_attempts)
    values: dict[str, Any] = {
        "state": state,
        "reason": final,
        "cost_ucr": job.cost_ucr + cost,
        "fee_ucr": job.fee_ucr + fee,
        "updated_ms": now,
    }
    if state.terminal:
        values["settled_ms"] = now
    tx.update_job(job.id, {JobState.MATCHED, JobState.RUNNING}, **values)
    evidence: dict[str, Any] = {}
    if signed is not None:
        report, signature = signed
        evidence = {
            "usage": payload,
            "usage_sig": signature,
            "opened": {
                "outputs": {"salt": report.outputs_salt, "content": report.outputs_json().decode()},
                "logs": {"salt": report.logs_salt, "content": report.logs_sha256},
            },
            "party": job.account_id,
        }
    log.record(
        ctx,
        tx,
        "attempt.ended",
        attempt=attempt.id,
        job=job.id,
        reason=reason.value,
        billed_ms=billed_ms,
        cost_ucr=cost,
        fee_ucr=fee,
        job_state=state.value,
        job_reason=final.value if final is not None else None,
        **evidence,
    )
    return True


def _settle(
    ctx: Context, tx: Tx, attempt: AttemptRec, reason: Reason, billed_ms: int
) -> tuple[int, int]:
    """Post the used cost and its fee from the attempt's escrow (the rest is released), or void
    it, in one ledger call; log both resolutions. Returns (cost, fee) in µcr."""
    ids = [attempt.hold_cost_id] + ([attempt.hold_fee_id] if attempt.hold_fee_id else [])
    held = tx.ledger.transfers_by_id(ids)
    hold = held[attempt.hold_cost_id]
    cost = fee = 0
    if reason in CONSUMER_PAYS and billed_ms > 0:
        cost = min(money.cost_ucr(billed_ms, attempt.hourly_ucr), hold.amount)
        fee = money.fee_ucr(cost, ctx.rules.fee_bps)
    first_event = tx.next_log_index()  # the resolutions are logged next, in this order
    items: list[tuple[TransferRec, int | None, int | None]] = [(hold, cost or None, first_event)]
    if attempt.hold_fee_id is not None:
        fee = min(fee, held[attempt.hold_fee_id].amount)
        items.append((held[attempt.hold_fee_id], fee or None, first_event + 1))
    else:
        fee = 0
    for resolved in tx.ledger.resolve_many(items, now_ms=ctx.now_ms()):
        log.transfer(ctx, tx, resolved)
    return cost, fee
