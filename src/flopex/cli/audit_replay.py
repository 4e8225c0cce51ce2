"""The audit's replay of downloaded events, with actors' signatures checked on other cores.

Ed25519 verification dominates replaying a log (about 80 µs a signature against a few µs for
the rest of an event) and releases the GIL, so the audit checks a page's signatures on another
thread while it replays the next page; the first bad one is reported by its index (before any
later replay error, so the first bad event is always the one named).
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cryptography.exceptions import InvalidSignature

from flopex.domain.replay import BAD_SIGNATURE, Replay, ReplayError
from flopex.domain.signing import canonical_json, load_public_key

PAGE = 1000  # events per page: signatures are checked a page at a time, one page behind


class PooledSignatures:
    """Collect a page's signatures, check them as one task on another thread while the next
    page is replayed, and report the first bad one."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.collected: list[tuple[int, Any, bytes, bytes]] = []
        self.running: list[Future[int | None]] = []
        self.keys: dict[str, Any] = {}  # base64 -> parsed key (a node signs many reports)

    def check(self, index: int, public_key_b64: str, payload: Any, signature: str) -> None:
        """Collect one check for the current page, parsed here so that the other thread runs
        little but the verification itself (which releases the GIL)."""
        key = self.keys.get(public_key_b64)
        if key is None:
            key = self.keys[public_key_b64] = load_public_key(public_key_b64)
        try:
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            raw = b""
        self.collected.append((index, key, raw, canonical_json(payload)))

    def page_done(self) -> None:
        """Hand the page's checks to the pool."""
        if self.collected:
            self.running.append(self.pool.submit(_first_bad, self.collected))
            self.collected = []

    def first_bad(self, keep_last: bool = False) -> int | None:
        """Wait for the handed-over pages (all but the newest with ``keep_last``); the index of
        the first bad signature among them."""
        if not keep_last:
            self.page_done()
        ready = self.running[:-1] if keep_last else self.running
        bad = [i for i in (f.result() for f in ready) if i is not None]
        self.running = self.running[len(ready) :]
        return min(bad) if bad else None


def _first_bad(checks: list[tuple[int, Any, bytes, bytes]]) -> int | None:
    for index, key, signature, message in checks:
        try:
            key.verify(signature, message)
        except (InvalidSignature, AttributeError, ValueError):  # no key, or a bad signature
            return index
    return None


def replay_events(replay: Replay, start: int, events: list[str]) -> None:
    """Apply ``events`` (JSON text, indexes from ``start``) to ``replay``; :class:`ReplayError`
    names the first event that breaks a rule or carries a bad signature."""
    with ThreadPoolExecutor(1) as pool:
        pooled = PooledSignatures(pool)
        inline, replay.signatures = replay.signatures, pooled
        try:
            for first in range(0, len(events), PAGE):
                _page(replay, pooled, start + first, events[first : first + PAGE])
                bad = pooled.first_bad(keep_last=True)
                if bad is not None:
                    raise ReplayError(bad, BAD_SIGNATURE)
            bad = pooled.first_bad()
            if bad is not None:
                raise ReplayError(bad, BAD_SIGNATURE)
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
        bad = pooled.first_bad()  # an earlier bad signature is the first bad event
        if bad is not None and bad < exc.index:
            raise ReplayError(bad, BAD_SIGNATURE) from None
        raise
    pooled.page_done()
