"""The tamper-evident log over HTTP: checkpoint, key, entries, proofs (anyone may read)."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from flopex.domain.note import verifier_key
from flopex.domain.signing import public_key_b64
from flopex.protocol import Cosignature, LogEntries, LogKey, LogOpening, LogOpenings, LogProof
from flopex.server.deps import Caller, Ctx
from flopex.service import accounts, log
from flopex.service.accounts import Role

router = APIRouter(prefix="/v1/log", tags=["log"])
NOTE = "text/plain; charset=utf-8"


@router.get("/checkpoint", response_class=PlainTextResponse)
def checkpoint(ctx: Ctx, witnesses: int = Query(0, ge=0, le=64)) -> PlainTextResponse:
    """The newest checkpoint: a C2SP signed note (origin, size, base64 root) by the exchange key,
    with its witnesses' cosignatures; ``witnesses=N``: the newest that N witnesses cosigned."""
    _, note = log.checkpoint(ctx, witnesses)
    return PlainTextResponse(note, media_type=NOTE)


@router.post("/cosignatures", status_code=204)
def cosign(body: Cosignature, ctx: Ctx, caller: Caller) -> None:
    """A witness posts its cosignature on a checkpoint it verified (checked before it is kept)."""
    log.add_cosignature(ctx, body.size, body.signature_line, body.witness_key)


@router.post("/checkpoint", response_class=PlainTextResponse)
def checkpoint_now(ctx: Ctx, caller: Caller) -> PlainTextResponse:
    """Admin: integrate what is new and sign a checkpoint now (else the server does it each
    second while the log grows)."""
    accounts.require(caller, Role.ADMIN)
    log.integrate(ctx)
    _, note = log.checkpoint(ctx)
    return PlainTextResponse(note, media_type=NOTE)


@router.get("/key", response_model=LogKey)
def key(ctx: Ctx) -> LogKey:
    """The log's origin and the key its checkpoints are signed with."""
    origin = ctx.rules.log_origin
    return LogKey(
        origin=origin,
        verifier_key=verifier_key(origin, ctx.key),
        public_key=public_key_b64(ctx.key),
    )


@router.get("/entries", response_model=LogEntries)
def entries(
    ctx: Ctx,
    start: int = Query(ge=0),
    end: int = Query(ge=1, description=f"exclusive; at most {log.MAX_ENTRIES_PAGE} per page"),
) -> LogEntries:
    """Events ``[start, end)`` (a bounded page: ask again from ``start + len(entries)``)."""
    return LogEntries(start=start, entries=log.entries(ctx, start, end))


@router.get("/openings", response_model=LogOpenings)
def openings(
    ctx: Ctx,
    caller: Caller,
    start: int = Query(ge=0),
    end: int = Query(ge=1, description=f"exclusive; at most {log.MAX_ENTRIES_PAGE} events"),
) -> LogOpenings:
    """The salts and contents behind the commitments of the caller's own events in
    ``[start, end)`` (every event's for an auditor or admin): check them against the entries."""
    everyone = Role.AUDITOR.value in caller.roles or Role.ADMIN.value in caller.roles
    found = log.openings(ctx, start, end, None if everyone else caller.id)
    bounded = min(end, start + log.MAX_ENTRIES_PAGE)
    return LogOpenings(
        start=start,
        end=bounded,
        openings=[LogOpening(index=i, fields=f) for i, f in found],
    )


def _b64(hashes: list[bytes]) -> LogProof:
    return LogProof(hashes=[base64.b64encode(h).decode() for h in hashes])


@router.get("/proofs/inclusion", response_model=LogProof)
def inclusion(ctx: Ctx, index: int = Query(ge=0), size: int = Query(ge=1)) -> LogProof:
    """RFC 9162 §2.1.3 inclusion proof of event ``index`` in the tree of ``size`` events."""
    return _b64(log.inclusion_proof(ctx, index, size))


@router.get("/proofs/consistency", response_model=LogProof)
def consistency(ctx: Ctx, old: int = Query(ge=0), new: int = Query(ge=0)) -> LogProof:
    """RFC 9162 §2.1.4 consistency proof from size ``old`` to size ``new``."""
    return _b64(log.consistency_proof(ctx, old, new))
