"""Jobs: submit, list, show, cancel, explain, logs (SSE when following), outputs, contracts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from flopex.domain.signing import public_key_b64
from flopex.domain.states import JobState
from flopex.protocol import (
    Contract,
    Explanation,
    Job,
    JobBatch,
    JobBatchCreate,
    JobCreate,
    JobPage,
    LogPage,
    OutputFile,
    OutputList,
)
from flopex.server import views
from flopex.server.deps import Caller, Ctx, IdemKey
from flopex.service import jobs
from flopex.service.context import Context
from flopex.service.placement import rfc3339
from flopex.service.records import AccountRec

router = APIRouter(prefix="/v1", tags=["jobs"])
LOG_POLL_S = 0.25


@router.post("/jobs", response_model=Job, status_code=201)
def submit(body: JobCreate, ctx: Ctx, caller: Caller, idem: IdemKey = None) -> Job:
    """Submit a job spec; it is placed at once when an offer fits."""
    view = jobs.submit_view(
        ctx, caller, body.spec, workdir_sha256=body.workdir_sha256, idem_key=idem
    )
    return views.job(view, ctx.now_ms())


@router.post("/jobs/batch", response_model=JobBatch, status_code=201)
def submit_batch(body: JobBatchCreate, ctx: Ctx, caller: Caller, idem: IdemKey = None) -> JobBatch:
    """Submit many jobs in one transaction, all or none (an error names the job's index;
    Idempotency-Key KEY makes each job's key KEY/index)."""
    items = [
        jobs.Submission(item.spec, item.workdir_sha256, f"{idem}/{i}" if idem else None)
        for i, item in enumerate(body.jobs)
    ]
    views_ = jobs.submit_many(ctx, caller, items)
    return JobBatch(jobs=[views.job(v, ctx.now_ms()) for v in views_])


def _show(ctx: Context, caller: AccountRec, job_id: str) -> Job:
    return views.job(jobs.get(ctx, caller, job_id), ctx.now_ms())


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    ctx: Ctx,
    caller: Caller,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    state: JobState | None = None,
    all_accounts: bool = Query(False, alias="all", description="every account's (auditors)"),
) -> JobPage:
    """The caller's jobs, newest first (``all=true``: every account's, for auditors)."""
    found = jobs.list_jobs(
        ctx, caller, limit=limit, after=cursor, state=state, everyone=all_accounts
    )
    nxt = found[-1].job.id if len(found) == limit else None
    return JobPage(jobs=[views.job(v, ctx.now_ms()) for v in found], next_cursor=nxt)


@router.get("/jobs/{job_id}", response_model=Job)
def show(job_id: str, ctx: Ctx, caller: Caller) -> Job:
    """One of the caller's jobs."""
    return _show(ctx, caller, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=Job)
def cancel(job_id: str, ctx: Ctx, caller: Caller) -> Job:
    """Cancel a job (a running one stops at the node's next heartbeat)."""
    jobs.cancel(ctx, caller, job_id)
    return _show(ctx, caller, job_id)


@router.get("/jobs/{job_id}/explain", response_model=Explanation)
def explain(job_id: str, ctx: Ctx, caller: Caller) -> Explanation:
    """Every offer considered for the job and why it was or was not chosen."""
    found = jobs.explain(ctx, caller, job_id)
    view = found.view
    offers = {o.id: o for o in found.offers}
    chosen = {a.offer_id for a in view.attempts}
    rows = [views.verdict(v, offers[v.offer_id], v.offer_id in chosen) for v in found.verdicts]
    feasible = sum(1 for r in rows if r.feasible)
    summary = f"{feasible} of {len(rows)} offers can take this job now"
    if view.attempts:
        summary += f"; placed on offer {view.attempts[-1].offer_id} ({view.attempts[-1].region})"
    return Explanation(job=views.job(view, ctx.now_ms()), verdicts=rows, summary=summary)


@router.get("/jobs/{job_id}/outputs", response_model=OutputList)
def outputs(job_id: str, ctx: Ctx, caller: Caller) -> OutputList:
    """The job's output files (download each with GET /v1/blobs/{sha256})."""
    rows = jobs.outputs(ctx, caller, job_id)
    return OutputList(
        outputs=[OutputFile(path=r.path, sha256=r.sha256, size_bytes=r.size_bytes) for r in rows]
    )


@router.get("/jobs/{job_id}/logs", response_model=LogPage)
async def logs(
    job_id: str,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    cursor: int = Query(0, ge=0),
    limit: int = Query(200, ge=1, le=500),
    follow: bool = False,
) -> LogPage | StreamingResponse:
    """Log chunks after ``cursor``; ``follow=true``: server-sent events until the job ends."""
    if not follow:
        return await run_in_threadpool(_log_page, ctx, caller, job_id, cursor, limit)
    await run_in_threadpool(jobs.get, ctx, caller, job_id)  # 404 before streaming
    return StreamingResponse(
        _follow(ctx, caller, job_id, cursor, request), media_type="text/event-stream"
    )


def _log_page(ctx: Context, caller: AccountRec, job_id: str, cursor: int, limit: int) -> LogPage:
    chunks = jobs.logs(ctx, caller, job_id, cursor, limit)
    state = jobs.get(ctx, caller, job_id).job.state
    nxt = chunks[-1].id if chunks else cursor
    return LogPage(
        chunks=[views.log_chunk(c) for c in chunks],
        next_cursor=nxt,
        done=state.terminal and not chunks,
    )


async def _follow(
    ctx: Context, caller: AccountRec, job_id: str, cursor: int, request: Request
) -> AsyncIterator[bytes]:
    while not await request.is_disconnected():
        page = await run_in_threadpool(_log_page, ctx, caller, job_id, cursor, 200)
        for chunk in page.chunks:
            yield f"id: {chunk.id}\nevent: log\ndata: {chunk.model_dump_json()}\n\n".encode()
        cursor = page.next_cursor
        if page.done:
            job = await run_in_threadpool(_show, ctx, caller, job_id)
            yield f"event: end\ndata: {json.dumps({'state': job.state.value})}\n\n".encode()
            return
        if not page.chunks:
            await asyncio.sleep(LOG_POLL_S)


@router.get("/contracts/{contract_id}", response_model=Contract)
def contract(contract_id: str, ctx: Ctx, caller: Caller) -> Contract:
    """A contract and the exchange's Ed25519 signature over its canonical JSON."""
    rec = jobs.contract(ctx, caller, contract_id)
    return Contract(
        id=rec.id,
        body=json.loads(rec.body),
        body_sha256=rec.body_sha256,
        signature=rec.signature,
        exchange_public_key=public_key_b64(ctx.key),
        created_at=rfc3339(rec.created_ms),
        log_index=rec.log_index,
    )
