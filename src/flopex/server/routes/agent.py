"""Provider agents: long-poll claims, log chunks, signed completion, hand-back on drain."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from flopex.domain.usage import OutputEntry
from flopex.domain.usage import UsageReport as DomainReport
from flopex.errors import FlopexError, RequestInvalid
from flopex.protocol import (
    Assignment,
    Claim,
    ClaimReply,
    Complete,
    CompleteBatch,
    Completed,
    CompletionResult,
    CompletionResults,
    ErrorInfo,
    LogPost,
    Release,
    UsageReport,
)
from flopex.server import views
from flopex.server.deps import Caller, Ctx
from flopex.server.notify import WorkNotifier
from flopex.service import attempts

router = APIRouter(prefix="/v1", tags=["agent"])
POLL_FALLBACK_S = 0.5


@router.post("/agent/claim", response_model=ClaimReply)
async def claim(body: Claim, request: Request, ctx: Ctx, caller: Caller) -> ClaimReply:
    """Take up to ``max`` attempts matched to the node, waiting up to ``wait_s`` for work."""
    notifier: WorkNotifier = request.app.state.notifier
    loop = asyncio.get_running_loop()
    deadline = loop.time() + body.wait_s
    got: list[attempts.Assignment] = []
    while True:
        if await request.is_disconnected():
            break  # the agent is gone: take nothing for it, and do not count it as alive
        event = notifier.event(body.node_id)
        event.clear()
        got = await run_in_threadpool(attempts.claim, ctx, caller, body.node_id, body.max)
        left = deadline - loop.time()
        if got or left <= 0:
            break
        # Woken at once by a placement in this process; other replicas' placements are
        # seen by the fallback poll.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(left, POLL_FALLBACK_S))
    return ClaimReply(
        assignments=[Assignment(**attempts.assignment_payload(a)) for a in got],
        lease_ttl_s=ctx.rules.lease_ttl_s,
        heartbeat_interval_s=ctx.rules.heartbeat_interval_s,
    )


@router.post("/attempts/{attempt_id}/logs", status_code=204)
def post_log(attempt_id: str, body: LogPost, ctx: Ctx, caller: Caller) -> None:
    """Append a log chunk (idempotent by sequence number); 409 when fenced."""
    attempts.post_log(ctx, caller, attempt_id, body.lease_epoch, body.seq, body.data)


@router.post("/attempts/{attempt_id}/complete", response_model=Completed)
def complete(attempt_id: str, body: Complete, ctx: Ctx, caller: Caller) -> Completed:
    """Settle an attempt from the node's signed usage report."""
    if body.report.attempt_id != attempt_id:
        raise RequestInvalid("report.attempt_id does not match the URL")
    attempt, job = attempts.complete(ctx, caller, _report(body.report), body.signature)
    return Completed(attempt=views.attempt(attempt), job_state=job.state)


@router.post("/attempts/completions", response_model=CompletionResults)
def complete_many(body: CompleteBatch, ctx: Ctx, caller: Caller) -> CompletionResults:
    """Settle several attempts in one transaction; each report is settled or refused on its
    own (``error`` as in an error body: a fenced one is ``attempt.fenced``)."""
    done = attempts.complete_many(
        ctx, caller, [(_report(c.report), c.signature) for c in body.reports]
    )
    results = []
    for item, outcome in zip(body.reports, done, strict=True):
        attempt_id = item.report.attempt_id
        if isinstance(outcome, FlopexError):
            info = ErrorInfo.model_validate(outcome.to_body()["error"])
            results.append(CompletionResult(attempt_id=attempt_id, error=info))
        else:
            attempt, job = outcome
            completed = Completed(attempt=views.attempt(attempt), job_state=job.state)
            results.append(CompletionResult(attempt_id=attempt_id, completed=completed))
    return CompletionResults(results=results)


def _report(r: UsageReport) -> DomainReport:
    return DomainReport(
        attempt_id=r.attempt_id,
        lease_epoch=r.lease_epoch,
        node_id=r.node_id,
        duration_ms=r.duration_ms,
        exit_code=r.exit_code,
        outcome=r.outcome,
        outputs=tuple(OutputEntry(o.path, o.sha256, o.size_bytes) for o in r.outputs),
        outputs_salt=r.outputs_salt,
        logs_sha256=r.logs_sha256,
        logs_salt=r.logs_salt,
    )


@router.post("/attempts/{attempt_id}/release", status_code=204)
def release(attempt_id: str, body: Release, ctx: Ctx, caller: Caller) -> None:
    """Hand an attempt back (agent draining): free for the consumer, the job is requeued."""
    attempts.release(ctx, caller, attempt_id, body.lease_epoch)
