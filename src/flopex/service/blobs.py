"""Use cases: content-addressed blobs (workdirs, outputs), deduplicated per account.

A consumer uploads and reads its own blobs; an agent uploads outputs for an attempt it holds
(they then belong to the job's owner) and reads the workdir of attempts it runs. Someone else's
blob answers 404, even to ``HEAD``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flopex.errors import NotFound, RequestInvalid, TooLarge
from flopex.service.attempts import blob_readable_by_node
from flopex.service.context import Context
from flopex.service.records import AccountRec
from flopex.service.retry import retrying

_SHA = re.compile(r"^[0-9a-f]{64}$")


def check_sha(sha256: str) -> str:
    """A blob address is 64 lowercase hex digits."""
    if not _SHA.match(sha256):
        raise RequestInvalid(
            f"bad blob address {sha256!r}", hint="64 lowercase hex digits (SHA-256)"
        )
    return sha256


def exists_for(ctx: Context, actor: AccountRec, sha256: str) -> int:
    """The blob's size if the caller may read it (dedup check), else :class:`NotFound`."""
    check_sha(sha256)
    with ctx.store.read() as tx:
        size = tx.blob_size(sha256)
        if size is not None and (
            tx.has_blob_ref(actor.id, sha256) or blob_readable_by_node(tx, actor, sha256)
        ):
            return size
    raise NotFound(f"blob {sha256} not found", code="blob.not_found")


@retrying
def put(ctx: Context, actor: AccountRec, sha256: str, data: bytes) -> int:
    """Store a blob after checking its hash; the caller may read it from then on."""
    check_sha(sha256)
    if len(data) > ctx.rules.max_blob_bytes:
        raise TooLarge(f"blob of {len(data)} bytes exceeds the limit of {ctx.rules.max_blob_bytes}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RequestInvalid(
            f"blob content hashes to {actual}, not {sha256}", code="blob.hash_mismatch"
        )
    ctx.blobs.put(sha256, data)
    with ctx.store.write() as tx:
        tx.add_blob(sha256, len(data), actor.id, ctx.now_ms())
    return len(data)


def open_for(ctx: Context, actor: AccountRec, sha256: str) -> Path:
    """The blob's file, if the caller may read it."""
    exists_for(ctx, actor, sha256)
    return ctx.blobs.path(sha256)
