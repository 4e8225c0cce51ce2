"""What ``flopex audit`` compares with the API once the log verified: the ledger (admin or
auditor), the jobs (the caller's own, every account's for an auditor), the caller's openings of
commitments (specs, names, outputs), and the signed contracts of the new events.

The exchange keeps running while the audit reads, so the comparison is made at a moment when the
log did not grow around the reads; events past the checkpoint are replayed on a copy (their
integrity is checked by the next audit, against the next checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flopex.client.http import Client
from flopex.domain.replay import Replay, ReplayError, Totals, check_opening
from flopex.domain.signing import canonical_json, load_public_key, sha256_hex, verify
from flopex.domain.usage import logs_sha256
from flopex.errors import FlopexError, Forbidden, Unauthorized

PAGE = 1000


class AuditFailed(FlopexError):
    code = "audit.failed"
    default_hint = "the exchange's history does not verify: keep this output as evidence"


@dataclass
class Opened:
    """What the caller's openings revealed, to hold the API to: job specs, and per attempt the
    digest of the logs its node signed for (job id, SHA-256)."""

    specs: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Fresh:
    """What the events verified in this audit created: contracts, jobs (by the index of their
    ``job.submitted``) and attempts ended with a node-signed report."""

    contracts: set[str] = field(default_factory=set)
    submitted: dict[str, int] = field(default_factory=dict)
    signed_attempts: set[str] = field(default_factory=set)


def scan(fresh: list[str], start: int) -> Fresh:
    """One pass over the verified events (only those the audit must hold the API to)."""
    found = Fresh()
    for offset, data in enumerate(fresh):
        if '"contract.signed"' in data or '"job.submitted"' in data or '"usage"' in data:
            event = json.loads(data)
            kind = event.get("kind")
            if kind == "contract.signed":
                found.contracts.add(str(event.get("contract")))
            elif kind == "job.submitted":
                found.submitted[str(event.get("job"))] = start + offset
            elif kind == "attempt.ended" and "usage" in event:
                found.signed_attempts.add(str(event.get("attempt")))
    return found


@dataclass
class Compared:
    """How much the audit compared with the API (-1: not allowed with this token)."""

    ledger_accounts: int = -1
    jobs: int = 0
    all_jobs: bool = False
    openings: int = 0
    specs: int = 0
    logs: int = 0
    contracts: int = 0


def tail(c: Client, start: int) -> list[str]:
    """Events after ``start`` that no checkpoint covers yet."""
    out: list[str] = []
    while True:
        page = c.log_entries(start + len(out), start + len(out) + PAGE).entries
        out += page
        if len(page) < PAGE:
            return out


def _jobs(c: Client) -> tuple[list[Any], bool]:
    """Every account's jobs if the token may read them (auditor), else the caller's own."""
    try:
        return _pages(c, all_accounts=True), True
    except (Forbidden, Unauthorized):
        return _pages(c, all_accounts=False), False


def _pages(c: Client, *, all_accounts: bool) -> list[Any]:
    jobs: list[Any] = []
    cursor = None
    while True:
        page = c.jobs(limit=500, cursor=cursor, all_accounts=all_accounts)
        jobs += page.jobs
        cursor = page.next_cursor
        if not cursor:
            return jobs


def check_openings(c: Client, fresh: list[str], start: int, done: Compared) -> Opened:
    """Open the caller's commitments among the verified events ``fresh`` (from ``start``)."""
    opened = Opened()
    end = start + len(fresh)
    at = start
    while at < end:
        page = c.log_openings(at, end)
        for opening in page.openings:
            if not start <= opening.index < end:
                raise AuditFailed(f"the server sent an opening of event {opening.index}")
            event = json.loads(fresh[opening.index - start])
            try:
                check_opening(opening.index, event, opening.fields)
            except ReplayError as exc:
                raise AuditFailed(str(exc)) from None
            done.openings += 1
            fields = opening.fields
            if event.get("kind") == "job.submitted" and "spec" in fields:
                opened.specs[str(event.get("job"))] = json.loads(fields["spec"]["content"])
            if event.get("kind") == "attempt.ended" and "logs" in fields:
                attempt, job = str(event.get("attempt")), str(event.get("job"))
                opened.logs[attempt] = (job, fields["logs"]["content"])
        at = page.end
    return opened


def compare(
    c: Client,
    r: Replay,
    size: int,
    seen: tuple[Fresh, Opened],
    exchange_key: str,
    done: Compared,
) -> None:
    """Compare the API with the replay at ``size`` (see the module docstring)."""
    for _ in range(5):
        before = tail(c, size)
        try:
            ledger: list[Any] | None = c.ledger().accounts
        except (Forbidden, Unauthorized):
            ledger = None
        jobs, everyone = _jobs(c) if c.token else ([], False)
        if tail(c, size) != before:
            continue
        view = Replay.from_state(r.to_state())
        for offset, data in enumerate(before):
            view.apply(size + offset, json.loads(data))
        if ledger is not None:
            _match(ledger, view)
            done.ledger_accounts = len(ledger)
        for job in jobs:
            _job(c, job, view, seen, exchange_key, done)
        done.jobs, done.all_jobs = len(jobs), everyone
        return
    raise AuditFailed("the log kept growing while the exchange was read; audit again")


def _job(
    c: Client,
    job: Any,
    view: Replay,
    seen: tuple[Fresh, Opened],
    exchange_key: str,
    done: Compared,
) -> None:
    fresh, opened = seen
    replayed = view.jobs.get(job.id)
    if replayed != job.state:
        raise AuditFailed(
            f"job {job.id}: the server reports {job.state}, the log's events give "
            f"{replayed or 'no such job'}"
        )
    _withheld(job, fresh, opened)
    if job.id in opened.specs:
        if opened.specs[job.id] != job.spec:
            raise AuditFailed(f"job {job.id}: the server shows a spec other than the one logged")
        done.specs += 1
    signed_logs = {a.id: opened.logs[a.id][1] for a in job.attempts if a.id in opened.logs}
    if signed_logs:
        shown = _logs(c, job.id)
        for attempt_id, digest in signed_logs.items():
            if logs_sha256(shown.get(attempt_id, [])) != digest:
                raise AuditFailed(
                    f"job {job.id}: the logs the server shows for attempt {attempt_id} are not "
                    "the ones its node signed for"
                )
            done.logs += 1
    for attempt in job.attempts:
        if attempt.contract_id in fresh.contracts:
            _contract(c, attempt.contract_id, view, exchange_key)
            done.contracts += 1


def _withheld(job: Any, fresh: Fresh, opened: Opened) -> None:
    """A job this audit saw created must point at its event and have its spec opened, and each
    of its node-signed endings its logs opened: a server cannot dodge a comparison by hiding the
    opening."""
    index = fresh.submitted.get(job.id)
    if index is not None:
        if job.log_index != index:
            raise AuditFailed(
                f"job {job.id}: the server says event {job.log_index} created it, the log has "
                f"its job.submitted at {index}"
            )
        if job.id not in opened.specs:
            raise AuditFailed(f"job {job.id}: the server withholds the opening of its spec")
    for attempt in job.attempts:
        if attempt.id in fresh.signed_attempts and attempt.id not in opened.logs:
            raise AuditFailed(
                f"job {job.id}: the server withholds the opening of attempt {attempt.id}'s logs"
            )


def _logs(c: Client, job_id: str) -> dict[str, list[tuple[int, str]]]:
    """Every log chunk the server shows for a job, by attempt: (seq, text)."""
    by_attempt: dict[str, list[tuple[int, str]]] = {}
    cursor = 0
    while True:
        page = c.logs(job_id, cursor)
        for chunk in page.chunks:
            by_attempt.setdefault(chunk.attempt_id, []).append((chunk.seq, chunk.data))
        if not page.chunks or page.next_cursor == cursor:
            return by_attempt
        cursor = page.next_cursor


def _contract(c: Client, contract_id: str, view: Replay, exchange_key: str) -> None:
    """A contract the server shows is the one whose hash the log holds, signed by the exchange."""
    shown = c.contract(contract_id)
    body = canonical_json(shown.body)
    logged = view.contracts.get(contract_id)
    if sha256_hex(body) != logged or shown.body_sha256 != logged:
        raise AuditFailed(
            f"contract {contract_id}: the server shows a body hashing to {sha256_hex(body)}, "
            f"the log holds {logged}"
        )
    key = load_public_key(exchange_key)
    if key is None or not verify(key, shown.body, shown.signature):
        raise AuditFailed(f"contract {contract_id} is not signed by the exchange key")


def _match(rows: list[Any], r: Replay) -> None:
    for row in rows:
        got = r.balances.get(row.id, Totals())
        server = (
            row.debits_pending_ucr,
            row.debits_posted_ucr,
            row.credits_pending_ucr,
            row.credits_posted_ucr,
        )
        mine = (got.debits_pending, got.debits_posted, got.credits_pending, got.credits_posted)
        if server != mine:
            raise AuditFailed(
                f"ledger account {row.id}: the server reports (debits pending, posted, credits "
                f"pending, posted) = {server}, the log's events give {mine}"
            )


__all__ = [
    "AuditFailed",
    "Compared",
    "Fresh",
    "Opened",
    "check_openings",
    "compare",
    "scan",
    "tail",
]
