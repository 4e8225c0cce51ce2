"""The exchange's tamper-evident log: every state change is an event appended in the same
transaction as the change; a background round hashes new events into the RFC 9162 tree and signs
a C2SP checkpoint with the exchange key (at most one per round, only when the log grew).

Events hold public economic facts under opaque ids (accounts, nodes, jobs, contracts, amounts,
prices, states, reasons, hashes), never private content (specs, envs, names, logs, outputs): for
that, a salted commitment ``SHA-256(salt || content)`` under ``commit``; the salts and contents
are kept as the event's *opening*, readable by its party (and auditors), who can check them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from flopex.domain import merkle
from flopex.domain.commitment import commit, new_salt
from flopex.domain.note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    parse_verifier_key,
    sign_note,
    verify_cosignature,
)
from flopex.domain.signing import canonical_json, load_public_key, verify
from flopex.errors import NotFound, RequestInvalid
from flopex.service.context import Context
from flopex.service.ports import Tx
from flopex.service.records import TransferRec
from flopex.service.retry import retrying

EVENT_VERSION = 1
MAX_INTEGRATE = 50_000  # events hashed per round (the next round takes the rest)
MAX_ENTRIES_PAGE = 1_000
NODE_CACHE_MAX = 200_000  # complete-subtree hashes kept in memory (about 30 MB at most)


Opening = dict[str, str]  # {"salt": hex, "content": text}


def record(
    ctx: Context,
    tx: Tx,
    kind: str,
    *,
    private: Mapping[str, str] | None = None,
    opened: Mapping[str, Opening] | None = None,
    party: str | None = None,
    **facts: Any,
) -> int:
    """Append one event to the log inside the caller's transaction; returns its index.

    ``private`` contents are logged as fresh salted commitments (``commit.<field>``);
    ``opened`` are openings of commitments already among the facts (a node's, in its signed
    report). Both are kept for ``party`` to read back with :func:`openings`."""
    now = ctx.now_ms()
    event = {"v": EVENT_VERSION, "kind": kind, "at_ms": now, **facts}
    fields: dict[str, Opening] = dict(opened or {})
    if private:
        commitments = {}
        for name, content in private.items():
            salt = new_salt()
            commitments[name] = commit(salt, content.encode())
            fields[name] = {"salt": salt, "content": content}
        event["commit"] = commitments
    index = tx.append_log(canonical_json(event).decode(), now)
    if fields:
        tx.put_log_opening(index, party, json.dumps(fields, sort_keys=True))
    return index


@dataclass(frozen=True)
class SignedEvent:
    """An event its actor signed: Ed25519 by ``signer`` (base64 key) over the canonical JSON of
    ``{"kind": kind, **facts}``. The leaf keeps ``signer`` and ``sig`` beside the facts, so anyone
    can check the actor's signature in the public log."""

    kind: str
    facts: dict[str, Any]
    signer: str
    sig: str

    def payload(self) -> dict[str, Any]:
        """What the actor signed."""
        return {"kind": self.kind, **self.facts}


@retrying
def append_signed(ctx: Context, events: list[SignedEvent]) -> int:
    """Verify each event's signature, then append them all in one durable transaction (a batched
    commit); returns the index of the first. Nothing is appended if one does not verify.

    Verification runs before the write lock is taken, so concurrent callers verify while another
    one writes (the Ed25519 check releases the GIL)."""
    for n, event in enumerate(events):
        key = load_public_key(event.signer)
        if key is None or not verify(key, event.payload(), event.sig):
            raise RequestInvalid(
                f"event {n} of the batch is not signed by its signer's key",
                code="log.bad_signature",
            )
    now = ctx.now_ms()
    head = {"v": EVENT_VERSION, "at_ms": now}
    leaves = [
        canonical_json(head | e.payload() | {"signer": e.signer, "sig": e.sig}).decode()
        for e in events
    ]
    with ctx.store.write() as tx:
        return tx.append_logs(leaves, now)


def openings(
    ctx: Context, start: int, end: int, party: str | None
) -> list[tuple[int, dict[str, Opening]]]:
    """Openings of events ``[start, end)`` (a bounded page): ``party``'s own, or all (None)."""
    if start < 0 or end <= start:
        raise RequestInvalid("need 0 <= start < end", code="log.bad_range")
    end = min(end, start + MAX_ENTRIES_PAGE)
    with ctx.store.read() as tx:
        rows = tx.log_openings(start, end, party)
    return [(index, json.loads(fields)) for index, fields in rows]


def _reader(
    fetch: Callable[[int, int], bytes], cache: dict[tuple[int, int], bytes]
) -> merkle.NodeReader:
    """Stored nodes (``fetch``), through ``cache``: a complete subtree's hash never changes once
    written. The cache is bounded: full, it starts again."""

    def read(level: int, index: int) -> bytes:
        hit = cache.get((level, index))
        if hit is None:
            hit = fetch(level, index)
            _remember(cache, level, index, hit)
        return hit

    return read


def _remember(cache: dict[tuple[int, int], bytes], level: int, index: int, h: bytes) -> None:
    if len(cache) >= NODE_CACHE_MAX:
        cache.clear()
    cache[(level, index)] = h


def integrate(ctx: Context) -> tuple[int, str] | None:
    """Hash the events not yet in the tree and sign a checkpoint; None when nothing is new.

    Looks first without the write lock: the server calls this every second, mostly idle."""
    with ctx.store.read() as tx:
        latest = tx.latest_checkpoint()
        if latest is not None and tx.log_size() == latest[0]:
            return None
    return _integrate(ctx)


@retrying
def _integrate(ctx: Context) -> tuple[int, str] | None:
    with ctx.store.write() as tx:
        latest = tx.latest_checkpoint()
        done = latest[0] if latest is not None else 0
        size = min(tx.log_size(), done + MAX_INTEGRATE)
        if latest is not None and size == done:
            return None
        cache: dict[tuple[int, int], bytes] = {}
        read = _reader(tx.log_node, cache)
        rows: list[tuple[int, int, bytes]] = []
        for offset, data in enumerate(tx.log_entries(done, size)):
            leaf = merkle.leaf_hash(data.encode())
            for level, index, h in merkle.nodes_closed_by_append(done + offset, leaf, read):
                cache[(level, index)] = h
                rows.append((level, index, h))
        tx.put_log_nodes(rows)
        text = Checkpoint(ctx.rules.log_origin, size, merkle.root(read, size)).text()
        note = sign_note(text, ctx.rules.log_origin, ctx.key)
        tx.insert_checkpoint(size, note, ctx.now_ms())
    ctx.log_signed_size = max(ctx.log_signed_size, size)
    for level, index, h in rows:  # committed: proofs may read them from memory now
        _remember(ctx.log_nodes, level, index, h)
    return size, note


def checkpoint(ctx: Context, witnesses: int = 0) -> tuple[int, str]:
    """The newest signed checkpoint (size, note) with its cosignatures; with ``witnesses`` > 0
    the newest that at least that many witnesses cosigned. The first is made on demand."""
    if witnesses > 0:
        with ctx.store.read() as tx:
            size = tx.newest_cosigned(witnesses)
            note = tx.checkpoint_at(size) if size is not None else None
            if size is None or note is None:
                raise NotFound(
                    f"no checkpoint has {witnesses} cosignatures yet",
                    code="log.not_cosigned",
                    hint="run `flopex witness` for this exchange, or ask for fewer witnesses",
                )
            return size, note + "".join(tx.cosignatures(size))
    with ctx.store.read() as tx:
        latest = tx.latest_checkpoint()
        if latest is not None:
            return latest[0], latest[1] + "".join(tx.cosignatures(latest[0]))
    made = integrate(ctx)
    if made is not None:
        return made
    with ctx.store.read() as tx:
        again = tx.latest_checkpoint()
    assert again is not None
    return again


@retrying
def add_cosignature(ctx: Context, size: int, line: str, witness_key: str) -> None:
    """Store a witness's cosignature line on the checkpoint of ``size``, once it verifies with
    the witness key given (a type 0x04 verifier key); the witness vouches for nothing else."""
    try:
        witness = parse_verifier_key(witness_key)
    except NoteError as exc:
        raise RequestInvalid(f"witness_key: {exc}", code="log.bad_witness_key") from None
    if witness.alg != ALG_COSIGNATURE_V1:
        raise RequestInvalid(
            "witness_key must be a cosignature key (type 0x04)", code="log.bad_witness_key"
        )
    if not line.endswith("\n") or line.count("\n") != 1:
        raise RequestInvalid("signature_line must be one line ending in a newline")
    with ctx.store.write() as tx:
        note = tx.checkpoint_at(size)
        if note is None:
            raise NotFound(f"no checkpoint of size {size}", code="log.no_checkpoint")
        try:
            verify_cosignature(note + line, witness)
        except NoteError as exc:
            raise RequestInvalid(f"cosignature: {exc}", code="log.bad_cosignature") from None
        tx.put_cosignature(size, witness.name, line, ctx.now_ms())


def _signed_size(tx: Tx) -> int:
    latest = tx.latest_checkpoint()
    return latest[0] if latest is not None else 0


def _out_of_range(what: str, size: int) -> RequestInvalid:
    return RequestInvalid(
        f"{what} is outside the signed log (checkpoint size {size})",
        code="log.out_of_range",
        hint="fetch /v1/log/checkpoint first; proofs are served up to its size",
    )


def entries(ctx: Context, start: int, end: int) -> list[str]:
    """Events ``[start, end)`` (at most MAX_ENTRIES_PAGE), as canonical JSON text."""
    if start < 0 or end <= start:
        raise RequestInvalid("need 0 <= start < end", code="log.bad_range")
    end = min(end, start + MAX_ENTRIES_PAGE)
    with ctx.store.read() as tx:
        return tx.log_entries(start, end)


@contextmanager
def _proof_reader(ctx: Context, size: int) -> Iterator[tuple[int, merkle.NodeReader]]:
    """(signed size, node reader) for a proof up to ``size``. Both come from memory while they
    can: the newest signed size this process saw (a checkpoint never shrinks) and the cached
    subtree hashes; a read transaction is opened only for what memory lacks."""
    with ExitStack() as stack:
        opened: list[Tx] = []

        def tx() -> Tx:
            if not opened:
                opened.append(stack.enter_context(ctx.store.read()))
            return opened[0]

        if size > ctx.log_signed_size:
            ctx.log_signed_size = max(ctx.log_signed_size, _signed_size(tx()))
        yield ctx.log_signed_size, _reader(lambda lv, i: tx().log_node(lv, i), ctx.log_nodes)


def inclusion_proof(ctx: Context, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of event ``index`` in the tree of ``size`` events."""
    with _proof_reader(ctx, size) as (signed, read):
        if not 0 <= index < size <= signed:
            raise _out_of_range(f"index {index} in size {size}", signed)
        return merkle.inclusion_proof(read, index, size)


def consistency_proof(ctx: Context, old: int, new: int) -> list[bytes]:
    """RFC 9162 consistency proof from size ``old`` to size ``new``."""
    with _proof_reader(ctx, new) as (signed, read):
        if not 0 <= old <= new <= signed:
            raise _out_of_range(f"sizes {old}..{new}", signed)
        return merkle.consistency_proof(read, old, new)


def transfer(ctx: Context, tx: Tx, rec: TransferRec) -> int:
    """Log a ledger transfer as it stands now (pending, posted or voided), and note the event's
    index on the transfer."""
    index = record(
        ctx,
        tx,
        f"transfer.{rec.state}",
        transfer=rec.id,
        debit=rec.debit_account_id,
        credit=rec.credit_account_id,
        amount_ucr=rec.amount,
        posted_ucr=rec.posted_amount,
        job=rec.job_id,
    )
    created = index if rec.kind == "single" or rec.state == "pending" else None
    resolved = index if rec.state != "pending" else None
    if (created is not None and rec.log_index != created) or (
        resolved is not None and rec.resolved_log_index != resolved
    ):  # the ledger wrote the row before anyone knew the event's index
        tx.ledger.note_log_index(rec.id, created=created, resolved=resolved)
    return index
