"""Use cases of consumers: submit, look at, cancel and explain jobs; read logs and outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from flopex.domain.ids import new_id
from flopex.domain.ledger import Purpose
from flopex.domain.matching import Verdict
from flopex.domain.spec import JobKind, JobSpec, parse_spec
from flopex.domain.states import AttemptState, JobState, Reason
from flopex.domain.units import format_credits
from flopex.errors import FlopexError, Forbidden, InsufficientFunds, NotFound, RequestInvalid
from flopex.service import log
from flopex.service.accounts import Role, require
from flopex.service.context import Context
from flopex.service.idempotency import idempotent
from flopex.service.placement import judge_all, offer_views, spec_of, try_match
from flopex.service.ports import Tx
from flopex.service.records import (
    AccountRec,
    AttemptRec,
    ContractRec,
    JobRec,
    LogRec,
    OfferRec,
    OutputRec,
)
from flopex.service.retry import retrying
from flopex.service.settlement import end_attempt

MAX_LIST = 500


@dataclass(frozen=True)
class JobView:
    """A job with its attempts, as its owner sees it."""

    job: JobRec
    attempts: list[AttemptRec]


def submit(
    ctx: Context,
    actor: AccountRec,
    spec_data: dict[str, Any],
    *,
    workdir_sha256: str | None,
    idem_key: str | None,
) -> JobRec:
    """Validate a spec, pre-check the balance, queue the job and place it at once if possible."""
    return submit_view(ctx, actor, spec_data, workdir_sha256=workdir_sha256, idem_key=idem_key).job


@retrying
def submit_view(
    ctx: Context,
    actor: AccountRec,
    spec_data: dict[str, Any],
    *,
    workdir_sha256: str | None,
    idem_key: str | None,
) -> JobView:
    """:func:`submit`, returning the job with its attempts as of the same transaction."""
    require(actor, Role.CONSUMER)
    now = ctx.now_ms()
    item = Submission(spec_data, workdir_sha256, idem_key)
    spec = _parse(item, now)
    with ctx.store.write() as tx:
        view, node_id = _submit_in(ctx, tx, actor, item, spec, now)
    if node_id is not None:
        ctx.on_work({node_id})
    return view


@dataclass(frozen=True)
class Submission:
    """One job of a submission: its spec as sent, its uploaded workdir, its idempotency key."""

    spec_data: dict[str, Any]
    workdir_sha256: str | None = None
    idem_key: str | None = None


@retrying
def submit_many(ctx: Context, actor: AccountRec, items: list[Submission]) -> list[JobView]:
    """Submit several jobs in one transaction, all or none: an error names the job's index and
    nothing is queued or held (a sweep is one decision)."""
    require(actor, Role.CONSUMER)
    now = ctx.now_ms()
    specs = [_at(i, _parse, item, now) for i, item in enumerate(items)]
    views, woken = [], set()
    with ctx.store.write() as tx:
        for i, (item, spec) in enumerate(zip(items, specs, strict=True)):
            view, node_id = _at(i, _submit_in, ctx, tx, actor, item, spec, now)
            views.append(view)
            woken |= {node_id} if node_id is not None else set()
    ctx.on_work(woken)
    return views


_T = TypeVar("_T")


def _at(index: int, call: Callable[..., _T], *args: Any) -> _T:
    """``call(*args)``, its error (if any) naming the batch index it is about."""
    try:
        return call(*args)
    except FlopexError as exc:
        exc.message = f"jobs[{index}]: {exc.message}"
        exc.details = {**(exc.details or {}), "index": index}
        exc.args = (exc.message,)
        raise


def _parse(item: Submission, now: int) -> JobSpec:
    spec = parse_spec(item.spec_data, now=datetime.fromtimestamp(now / 1000, tz=UTC))
    if spec.kind != JobKind.COMMAND:
        raise RequestInvalid(
            "inference jobs are not supported by this exchange yet",
            code="job.kind_unsupported",
            hint="submit a command job (a `run` script)",
        )
    return spec


def _check_funds(tx: Tx, actor: AccountRec, spec: JobSpec) -> int:
    """The available balance, if it can place this job at all (else InsufficientFunds)."""
    available = tx.ledger.balances(actor.id)[Purpose.AVAILABLE].available
    if available <= 0 or (spec.budget_ucr is not None and available < spec.budget_ucr):
        need = spec.budget_ucr or 1
        wanted = (
            f"the job's budget of {format_credits(need)} credits"
            if spec.budget_ucr is not None
            else "a positive balance to hold escrow"
        )
        raise InsufficientFunds(
            f"your available balance is {format_credits(available)} credits; "
            f"placing this job needs {wanted}",
            details={"available_ucr": available, "needed_ucr": need},
        )
    return available


def _submit_in(
    ctx: Context, tx: Tx, actor: AccountRec, item: Submission, spec: JobSpec, now: int
) -> tuple[JobView, str | None]:
    """Queue one job inside the caller's transaction and place it if an offer fits now:
    (its view, the node that got it or None)."""
    request = {"spec": item.spec_data, "workdir_sha256": item.workdir_sha256}
    replay = idempotent(tx, actor.id, item.idem_key, "job", request)
    if replay is not None:
        return JobView(_job_of(tx, actor, replay), tx.attempts_of(replay)), None
    workdir = item.workdir_sha256
    if workdir is not None and not tx.has_blob_ref(actor.id, workdir):
        raise NotFound(
            f"workdir blob {workdir} not uploaded",
            code="blob.not_found",
            hint="upload it first with PUT /v1/blobs/{sha256} (the CLI does this)",
        )
    available = _check_funds(tx, actor, spec)
    job = _new_job(ctx, actor, spec, workdir, now)
    private = {"spec": job.spec} | ({"workdir_sha256": workdir} if workdir else {})
    idx = log.record(
        ctx,
        tx,
        "job.submitted",
        job=job.id,
        account=actor.id,
        job_kind=job.kind,
        private=private,
        party=actor.id,
    )
    job = replace(job, log_index=idx)
    tx.insert_job(job)
    idempotent(tx, actor.id, item.idem_key, "job", request, job.id)
    views = [v for v in offer_views(ctx, tx, tx.offers()) if v.node_alive]
    node_id = try_match(ctx, tx, job, views, spec=spec, available_ucr=available)
    result = tx.get_job(job.id)
    assert result is not None
    return JobView(result, tx.attempts_of(job.id) if node_id is not None else []), node_id


def _new_job(
    ctx: Context, actor: AccountRec, spec: JobSpec, workdir: str | None, now: int
) -> JobRec:
    return JobRec(
        id=new_id("job"),
        account_id=actor.id,
        name=spec.name,
        kind=spec.kind.value,
        spec=json.dumps(spec.public_dict(), sort_keys=True),
        secrets_sealed=None,
        workdir_sha256=workdir,
        state=JobState.QUEUED,
        reason=None,
        max_attempts=spec.max_attempts or ctx.rules.max_attempts,
        attempts=0,
        deadline_ms=int(spec.deadline_at.timestamp() * 1000) if spec.deadline_at else None,
        cost_ucr=0,
        fee_ucr=0,
        created_ms=now,
        updated_ms=now,
        settled_ms=None,
    )


def reads_all(actor: AccountRec) -> bool:
    """Auditors (and admins) may read every account's jobs and contracts, never change them."""
    return Role.AUDITOR.value in actor.roles or Role.ADMIN.value in actor.roles


def _job_of(tx: Tx, actor: AccountRec, job_id: str, *, change: bool = False) -> JobRec:
    job = tx.get_job(job_id)
    may = Role.ADMIN.value in actor.roles if change else reads_all(actor)
    if job is None or (job.account_id != actor.id and not may):
        raise NotFound(f"job {job_id} not found", code="job.not_found")
    return job


def get(ctx: Context, actor: AccountRec, job_id: str) -> JobView:
    """One of the caller's jobs with its attempts."""
    with ctx.store.read() as tx:
        job = _job_of(tx, actor, job_id)
        return JobView(job, tx.attempts_of(job.id))


def list_jobs(
    ctx: Context,
    actor: AccountRec,
    *,
    limit: int,
    after: str | None,
    state: JobState | None,
    everyone: bool = False,
) -> list[JobView]:
    """The caller's jobs, newest first; ``everyone``: every account's (auditors and admins)."""
    if everyone and not reads_all(actor):
        raise Forbidden("listing every account's jobs needs the auditor role")
    owner = None if everyone else actor.id
    with ctx.store.read() as tx:
        jobs = tx.jobs_of(owner, limit=min(limit, MAX_LIST), after=after, state=state)
        attempts = tx.attempts_of_jobs([j.id for j in jobs])
        return [JobView(j, attempts[j.id]) for j in jobs]


@retrying
def cancel(ctx: Context, actor: AccountRec, job_id: str) -> JobRec:
    """Cancel a job: at once if not running, else the node is told at its next heartbeat."""
    now = ctx.now_ms()
    with ctx.store.write() as tx:
        job = _job_of(tx, actor, job_id, change=True)
        if job.state.terminal:
            return job
        live = [a for a in tx.attempts_of(job.id) if a.state != AttemptState.ENDED]
        for attempt in live:
            if attempt.state == AttemptState.MATCHED:
                end_attempt(ctx, tx, attempt, Reason.USER_CANCELLED, billed_ms=0, epoch=None)
            elif not attempt.cancel_requested:
                tx.request_cancel(attempt.id)
                log.record(ctx, tx, "attempt.cancel_requested", attempt=attempt.id, job=job.id)
        if not live:
            log.record(ctx, tx, "job.ended", job=job.id, state="cancelled", reason="user_cancelled")
            tx.update_job(
                job.id,
                {JobState.QUEUED},
                state=JobState.CANCELLED,
                reason=Reason.USER_CANCELLED,
                updated_ms=now,
                settled_ms=now,
            )
        return _job_of(tx, actor, job_id)


@dataclass(frozen=True)
class Explanation:
    """Every active offer judged for a job now, beside the job's attempts (what was chosen)."""

    view: JobView
    offers: list[OfferRec]
    verdicts: list[Verdict]


def explain(ctx: Context, actor: AccountRec, job_id: str) -> Explanation:
    """Judge every active offer for this job now, with the reasons each cannot take it."""
    with ctx.store.read() as tx:
        job = _job_of(tx, actor, job_id)
        offers = tx.offers()
        verdicts = judge_all(ctx, tx, job, spec_of(job), offer_views(ctx, tx, offers))
        return Explanation(JobView(job, tx.attempts_of(job.id)), offers, verdicts)


def logs(ctx: Context, actor: AccountRec, job_id: str, after_id: int, limit: int) -> list[LogRec]:
    """The job's log chunks after a cursor."""
    with ctx.store.read() as tx:
        _job_of(tx, actor, job_id)
        return tx.logs_after(job_id, after_id, min(limit, MAX_LIST))


def outputs(ctx: Context, actor: AccountRec, job_id: str) -> list[OutputRec]:
    """The job's output files (content-addressed)."""
    with ctx.store.read() as tx:
        _job_of(tx, actor, job_id)
        return tx.outputs_of(job_id)


def contract(ctx: Context, actor: AccountRec, contract_id: str) -> ContractRec:
    """A contract, to either of its parties."""
    with ctx.store.read() as tx:
        rec = tx.get_contract(contract_id)
    allowed = rec is not None and (
        actor.id in (rec.consumer_id, rec.provider_id) or reads_all(actor)
    )
    if rec is None or not allowed:
        raise NotFound(f"contract {contract_id} not found", code="contract.not_found")
    return rec
