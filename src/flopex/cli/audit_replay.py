"""The audit's replay of downloaded events, with actors' signatures checked on other cores.

Ed25519 verification dominates replaying a log (about 80 µs a signature against a few µs for
the rest of an event), so the audit checks a page's signatures in a second process (forked: it
starts in milliseconds and shares no GIL with the replay) while it replays the next page; where
fork is not available, on a thread. The first bad one is reported by its index (before any
later replay error, so the first bad event is always the one named).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flopex.domain.replay import BAD_SIGNATURE, Replay, ReplayError
from flopex.domain.signing import canonical_json

PAGE = 1000  # events per page: signatures are checked a page at a time, one page behind


class PooledSignatures:
    """Collect a page's signatures, check them as one task elsewhere while the next page is
    replayed, and report the first bad one."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.collected: list[tuple[int, bytes, bytes, bytes]] = []
        self.running: list[Future[int | None]] = []

    def check(self, index: int, public_key_b64: str, payload: Any, signature: str) -> None:
        """Collect one check for the current page (raw key, raw signature, signed bytes)."""
        try:
            key = base64.b64decode(public_key_b64, validate=True)
            raw = base64.b64decode(signature, validate=True)
        except ValueError:
            key = raw = b""
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


_KEYS: dict[bytes, Ed25519PublicKey] = {}  # in the checking process: a node signs many reports


def _first_bad(checks: list[tuple[int, bytes, bytes, bytes]]) -> int | None:
    for index, raw_key, signature, message in checks:
        try:
            key = _KEYS.get(raw_key)
            if key is None:
                key = _KEYS[raw_key] = Ed25519PublicKey.from_public_bytes(raw_key)
            key.verify(signature, message)
        except (InvalidSignature, ValueError):  # a malformed key, or a bad signature
            return index
    return None


def _checker() -> Executor:
    """A forked process to check signatures in, or a thread where fork is not available."""
    if "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(1)


def replay_events(replay: Replay, start: int, events: list[str]) -> None:
    """Apply ``events`` (JSON text, indexes from ``start``) to ``replay``; :class:`ReplayError`
    names the first event that breaks a rule or carries a bad signature."""
    with _checker() as pool:
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
