"""Use cases of provider agents: claim work, stream logs, complete with a signed report, hand
back on drain; and the reaper that ends attempts whose node went silent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flopex.domain import money
from flopex.domain.signing import load_public_key, verify
from flopex.domain.states import AttemptState, JobState, Reason
from flopex.domain.usage import Outcome, UsageReport
from flopex.errors import AttemptFenced, FlopexError, NotFound, RequestInvalid
from flopex.service import log
from flopex.service.accounts import Role, require
from flopex.service.context import Context
from flopex.service.placement import match_queued
from flopex.service.ports import Tx
from flopex.service.records import AccountRec, AttemptRec, ContractRec, JobRec, NodeRec, OutputRec
from flopex.service.retry import retrying
from flopex.service.settlement import end_attempt

MAX_CLAIM = 64
REAP_BATCH = 200


@dataclass(frozen=True)
class Assignment:
    """Work handed to a node: the attempt, its fence, the signed contract and the job."""

    attempt: AttemptRec
    contract: ContractRec
    job: JobRec


LIVENESS_REFRESH_MS = 1000  # an empty claim poll refreshes the node's last_seen at most this often


def _node_of(tx: Tx, actor: AccountRec, node_id: str) -> NodeRec:
    node = tx.get_node(node_id)
    if node is None or node.account_id != actor.id:
        raise NotFound(f"node {node_id} not found", code="node.not_found")
    return node


@retrying
def claim(ctx: Context, actor: AccountRec, node_id: str, max_count: int) -> list[Assignment]:
    """Atomically take up to ``max_count`` attempts matched to this node (never twice)."""
    require(actor, Role.PROVIDER)
    now = ctx.now_ms()
    out: list[Assignment] = []
    # Most polls find nothing: look first without the write lock, and only refresh liveness.
    with ctx.store.read() as tx:
        node = _node_of(tx, actor, node_id)
        waiting = tx.attempts_on_node(node_id, AttemptState.MATCHED, 1)
    if not waiting:
        if now - node.last_seen_ms >= LIVENESS_REFRESH_MS:
            with ctx.store.write() as tx:
                tx.update_node(node_id, last_seen_ms=now)
        return out
    with ctx.store.write() as tx:
        _node_of(tx, actor, node_id)
        tx.update_node(node_id, last_seen_ms=now)
        matched = tx.attempts_on_node(node_id, AttemptState.MATCHED, min(max_count, MAX_CLAIM))
        lease = now + int(ctx.rules.lease_ttl_s * 1000)
        for attempt in matched:
            if not tx.claim_attempt(attempt.id, now_ms=now, lease_expires_ms=lease):
                continue
            tx.update_job(
                attempt.job_id, {JobState.MATCHED}, state=JobState.RUNNING, updated_ms=now
            )
            claimed = tx.get_attempt(attempt.id)
            contract = tx.get_contract(attempt.contract_id)
            job = tx.get_job(attempt.job_id)
            assert claimed is not None and contract is not None and job is not None
            log.record(
                ctx,
                tx,
                "attempt.started",
                attempt=claimed.id,
                job=claimed.job_id,
                node=node_id,
                lease_epoch=claimed.lease_epoch,
            )
            out.append(Assignment(claimed, contract, job))
    return out


def _held(tx: Tx, actor: AccountRec, attempt_id: str, node_id: str | None = None) -> AttemptRec:
    """The attempt if the caller's node ever held it (404 otherwise)."""
    return _held_with_node(tx, actor, attempt_id, node_id)[0]


def _held_with_node(
    tx: Tx, actor: AccountRec, attempt_id: str, node_id: str | None = None
) -> tuple[AttemptRec, NodeRec]:
    attempt = tx.get_attempt(attempt_id)
    if attempt is None:
        raise NotFound(f"attempt {attempt_id} not found", code="attempt.not_found")
    node = tx.get_node(attempt.node_id)
    if node is None or node.account_id != actor.id or (node_id and node_id != attempt.node_id):
        raise NotFound(f"attempt {attempt_id} not found", code="attempt.not_found")
    return attempt, node


def _fence(attempt: AttemptRec, epoch: int) -> None:
    if attempt.state != AttemptState.RUNNING or attempt.lease_epoch != epoch:
        raise AttemptFenced(
            f"attempt {attempt.id} is {attempt.state} at epoch {attempt.lease_epoch}, "
            f"report carried epoch {epoch}",
            details={"state": attempt.state.value, "lease_epoch": attempt.lease_epoch},
        )


@retrying
def post_log(
    ctx: Context, actor: AccountRec, attempt_id: str, epoch: int, seq: int, data: str
) -> None:
    """Store one log chunk of a running attempt (idempotent by sequence number)."""
    with ctx.store.write() as tx:
        attempt = _held(tx, actor, attempt_id)
        _fence(attempt, epoch)
        tx.insert_log(attempt.job_id, attempt.id, seq, data, ctx.now_ms())


def _reason_for(outcome: Outcome, job: JobRec, attempt: AttemptRec) -> Reason:
    if outcome == Outcome.COMPLETED:
        return Reason.COMPLETED
    if outcome == Outcome.CANCELLED:
        return Reason.USER_CANCELLED if attempt.cancel_requested else Reason.JOB_ERROR
    if outcome == Outcome.TIME_LIMIT:
        spec = json.loads(job.spec).get("flopex", {})
        if spec.get("budget_ucr") is not None:
            return Reason.BUDGET_EXHAUSTED
        if job.deadline_ms is not None:
            return Reason.DEADLINE_MISSED
    return Reason.JOB_ERROR


@retrying
def complete(
    ctx: Context, actor: AccountRec, report: UsageReport, signature: str
) -> tuple[AttemptRec, JobRec]:
    """Verify the node's signed usage report, bill min(server-seen, signed) time and settle."""
    with ctx.store.write() as tx:
        checked = _checked(ctx, tx, actor, report, signature)
        _settle_report(ctx, tx, checked, report, signature)
        woken = match_queued(ctx, tx)
        final_attempt, final_job = tx.get_attempt(checked.attempt.id), tx.get_job(checked.job.id)
        assert final_attempt is not None and final_job is not None
    ctx.on_work(woken)
    return final_attempt, final_job


MAX_COMPLETE_BATCH = 64


@retrying
def complete_many(
    ctx: Context, actor: AccountRec, reports: list[tuple[UsageReport, str]]
) -> list[tuple[AttemptRec, JobRec] | FlopexError]:
    """:func:`complete` for several reports in one transaction; each is refused or settled on
    its own (a fenced or forged report does not hold the others back), in order."""
    if len(reports) > MAX_COMPLETE_BATCH:
        raise RequestInvalid(f"at most {MAX_COMPLETE_BATCH} reports per batch")
    done: list[_Checked | FlopexError] = []
    with ctx.store.write() as tx:
        for report, signature in reports:
            try:
                checked = _checked(ctx, tx, actor, report, signature)  # writes nothing
            except FlopexError as exc:
                done.append(exc)
                continue
            _settle_report(ctx, tx, checked, report, signature)
            done.append(checked)
        woken = match_queued(ctx, tx)
        out: list[tuple[AttemptRec, JobRec] | FlopexError] = []
        for item in done:
            if isinstance(item, FlopexError):
                out.append(item)
                continue
            final_attempt, final_job = tx.get_attempt(item.attempt.id), tx.get_job(item.job.id)
            assert final_attempt is not None and final_job is not None
            out.append((final_attempt, final_job))
    ctx.on_work(woken)
    return out


@dataclass(frozen=True)
class _Checked:
    """A usage report that passed every check: what settling it needs."""

    attempt: AttemptRec
    job: JobRec
    reason: Reason
    billed_ms: int


def _checked(
    ctx: Context, tx: Tx, actor: AccountRec, report: UsageReport, signature: str
) -> _Checked:
    """Every check that can refuse a report, before anything is written: the caller's node held
    the attempt at this epoch, the node signed it, its outputs were uploaded."""
    attempt, node = _held_with_node(tx, actor, report.attempt_id, report.node_id)
    _fence(attempt, report.lease_epoch)
    public_key = load_public_key(node.public_key)
    if public_key is None or not verify(public_key, report.payload(), signature):
        raise RequestInvalid(
            "usage report signature does not verify with the node's key",
            code="attempt.bad_signature",
            hint="the agent must sign with the key it registered",
        )
    job = tx.get_job(attempt.job_id)
    assert job is not None and attempt.claimed_ms is not None
    billed = money.billed_ms(
        ctx.now_ms() - attempt.claimed_ms, report.duration_ms, attempt.time_limit_s * 1000
    )
    reason = _reason_for(report.outcome, job, attempt)
    if reason == Reason.COMPLETED:
        _check_outputs(tx, report)
    return _Checked(attempt, job, reason, billed)


def _settle_report(
    ctx: Context, tx: Tx, checked: _Checked, report: UsageReport, signature: str
) -> None:
    """End the checked attempt, settle its money and record its outputs."""
    attempt, job = checked.attempt, checked.job
    ended = end_attempt(
        ctx,
        tx,
        attempt,
        checked.reason,
        billed_ms=checked.billed_ms,
        epoch=report.lease_epoch,
        exit_code=report.exit_code,
        signed=(report, signature),
        job=job,
    )
    if not ended:  # the fence above was read in this transaction, under the write lock
        raise AttemptFenced(f"attempt {attempt.id} ended meanwhile")
    if checked.reason == Reason.COMPLETED:
        _record_outputs(tx, job, attempt, report, ctx.now_ms())


def _check_outputs(tx: Tx, report: UsageReport) -> None:
    for out in report.outputs:
        if tx.blob_size(out.sha256) is None:
            raise NotFound(
                f"output {out.path} ({out.sha256}) was not uploaded",
                code="blob.not_found",
                hint="PUT /v1/blobs/{sha256} before completing",
            )


def _record_outputs(
    tx: Tx, job: JobRec, attempt: AttemptRec, report: UsageReport, now: int
) -> None:
    rows = []
    for out in report.outputs:  # uploaded: _check_outputs looked before anything was written
        tx.add_blob(out.sha256, out.size_bytes, job.account_id, now)
        rows.append(OutputRec(job.id, out.path, attempt.id, out.sha256, out.size_bytes))
    tx.insert_outputs(rows)


@retrying
def release(ctx: Context, actor: AccountRec, attempt_id: str, epoch: int) -> None:
    """The node hands an attempt back (drain on SIGTERM): free, and the job is requeued."""
    with ctx.store.write() as tx:
        attempt = _held(tx, actor, attempt_id)
        _fence(attempt, epoch)
        end_attempt(ctx, tx, attempt, Reason.PROVIDER_DRAINED, billed_ms=0, epoch=epoch)
        woken = match_queued(ctx, tx)
    ctx.on_work(woken)


@retrying
def reap(ctx: Context) -> int:
    """End attempts whose lease (running) or claim window (matched) passed; requeue their jobs."""
    now = ctx.now_ms()
    count = 0
    with ctx.store.write() as tx:
        for attempt in tx.expired_attempts(now, REAP_BATCH):
            reason = (
                Reason.PROVIDER_LOST
                if attempt.state == AttemptState.RUNNING
                else Reason.CLAIM_EXPIRED
            )
            if end_attempt(ctx, tx, attempt, reason, billed_ms=0, epoch=attempt.lease_epoch):
                count += 1
                if reason == Reason.PROVIDER_LOST:
                    _mark_silent(ctx, tx, attempt)
        woken = match_queued(ctx, tx)
    ctx.on_work(woken)
    return count


def _mark_silent(ctx: Context, tx: Tx, attempt: AttemptRec) -> None:
    """A node that let a lease lapse has not heartbeaten since: it gets no new work until it does.

    Without this, a claim long-poll that the server finishes after the agent died would keep the
    dead node looking alive, and the requeued job would be matched straight back to it.
    """
    node = tx.get_node(attempt.node_id)
    silent_since = attempt.lease_expires_ms - int(ctx.rules.lease_ttl_s * 1000) - 1
    if node is not None and node.last_seen_ms > silent_since:
        tx.update_node(node.id, last_seen_ms=silent_since)


def blob_readable_by_node(tx: Tx, actor: AccountRec, sha256: str) -> bool:
    """An agent may read a blob a running attempt of one of its nodes uses (its workdir)."""
    return any(job.workdir_sha256 == sha256 for job in tx.running_jobs_of_provider(actor.id))


def assignment_payload(a: Assignment) -> dict[str, Any]:
    """The parts of an assignment the agent needs (spec without secrets' values)."""
    return {
        "attempt_id": a.attempt.id,
        "lease_epoch": a.attempt.lease_epoch,
        "job_id": a.job.id,
        "contract": json.loads(a.contract.body),
        "contract_signature": a.contract.signature,
        "spec": json.loads(a.job.spec),
        "workdir_sha256": a.job.workdir_sha256,
        "time_limit_s": a.attempt.time_limit_s,
    }
