"""``Idempotency-Key``: a retried POST returns what the first one created, in the same txn."""

from __future__ import annotations

from typing import Any

from flopex.domain.signing import canonical_json, sha256_hex
from flopex.errors import IdempotencyConflict
from flopex.service.ports import Tx
from flopex.service.records import IdemRec


def idempotent(
    tx: Tx,
    account_id: str,
    key: str | None,
    scope: str,
    request: Any,
    created_id: str | None = None,
) -> str | None:
    """Without ``created_id``: the id a previous use of ``key`` created, or None.
    With it: remember that ``key`` created ``created_id``."""
    if not key:
        return None
    digest = sha256_hex(canonical_json(request))
    if created_id is not None:
        tx.put_idem(account_id, key, IdemRec(scope, digest, created_id), 0)
        return created_id
    found = tx.get_idem(account_id, key)
    if found is None:
        return None
    if found.scope != scope or found.request_sha256 != digest:
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was used for a different request")
    return found.object_id
