"""The audit's replay of downloaded events, with actors' signatures checked on other cores.

Ed25519 verification dominates replaying a log (about 80 µs a signature against a few µs for
the rest of an event) and releases the GIL, so the audit hands signatures to a small thread pool
and goes on replaying; each page it settles them, and the first bad one is reported by its index
(before any later replay error, so the first bad event is always the one named).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flopex.domain.replay import BAD_SIGNATURE, Replay, ReplayError, signature_ok

PAGE = 1000
MAX_THREADS = 4


class PooledSignatures:
    """Verify signatures in a thread pool; :meth:`settle` waits and raises the first bad one."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.waiting: list[tuple[int, Future[bool]]] = []

    def check(self, index: int, public_key_b64: str, payload: Any, signature: str) -> None:
        """Queue one check."""
        self.waiting.append(
            (index, self.pool.submit(signature_ok, public_key_b64, payload, signature))
        )

    def first_bad(self) -> int | None:
        """Wait for every queued check; the index of the first that failed."""
        bad = [index for index, done in self.waiting if not done.result()]
        self.waiting.clear()
        return min(bad) if bad else None


def replay_events(replay: Replay, start: int, events: list[str]) -> None:
    """Apply ``events`` (JSON text, indexes from ``start``) to ``replay``; :class:`ReplayError`
    names the first event that breaks a rule or carries a bad signature."""
    threads = max(1, min(MAX_THREADS, (os.cpu_count() or 1)))
    with ThreadPoolExecutor(threads) as pool:
        pooled = PooledSignatures(pool)
        inline, replay.signatures = replay.signatures, pooled
        try:
            for first in range(0, len(events), PAGE):
                _page(replay, pooled, start + first, events[first : first + PAGE])
        finally:
            replay.signatures = inline


def _page(replay: Replay, pooled: PooledSignatures, start: int, page: list[str]) -> None:
    try:
        for offset, data in enumerate(page):
            try:
                event = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ReplayError(start + offset, f"not JSON: {exc}") from None
            replay.apply(start + offset, event)
    except ReplayError as exc:
        bad = pooled.first_bad()
        if bad is not None and bad < exc.index:
            raise ReplayError(bad, BAD_SIGNATURE) from None
        raise
    bad = pooled.first_bad()
    if bad is not None:
        raise ReplayError(bad, BAD_SIGNATURE)
