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
from flopex.service.records import AttemptRec, JobRec


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
    if signed is not None:
        extra |= {"usage": json.dumps(signed[0].payload(), sort_keys=True)}
        extra |= {"usage_signature": signed[1]}
    if not tx.end_attempt(
        attempt.id, expect=attempt.state, epoch=epoch, ended_ms=now, reason=reason, **extra
    ):
        return False
    # Lock order offers -> ledger, as placement takes them, so that concurrent placements and
    # settlements on PostgreSQL do not deadlock.
    tx.release_capacity(attempt.offer_id, attempt.devices, attempt.cpus, attempt.memory_bytes)
    cost = fee = 0
    hold = tx.ledger.get_transfer(attempt.hold_cost_id)
    assert hold is not None
    if reason in CONSUMER_PAYS and billed_ms > 0:
        cost = min(money.cost_ucr(billed_ms, attempt.hourly_ucr), hold.amount)
        fee = money.fee_ucr(cost, ctx.rules.fee_bps)
    resolved = tx.ledger.resolve(
        attempt.hold_cost_id, cost or None, now_ms=now, known=hold, log_index=tx.next_log_index()
    )
    log.transfer(ctx, tx, resolved)
    if attempt.hold_fee_id is not None:
        fee_hold = tx.ledger.get_transfer(attempt.hold_fee_id)
        assert fee_hold is not None
        fee = min(fee, fee_hold.amount)
        resolved = tx.ledger.resolve(
            attempt.hold_fee_id,
            fee or None,
            now_ms=now,
            known=fee_hold,
            log_index=tx.next_log_index(),
        )
        log.transfer(ctx, tx, resolved)
    else:
        fee = 0
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
            "usage": report.payload(),
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
