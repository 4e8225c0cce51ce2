"""A short-lived in-process memo of token → account, so a busy client's every request does not
open a database transaction just to authenticate.

Bounded in size and in age (``ttl_s``, one second by default). Revoking a token in this process
clears the memo at once; a revocation made through another server process takes effect here
within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time

from flopex.service.records import AccountRec

MAX_ENTRIES = 10_000


class TokenCache:
    """token SHA-256 → (account, expiry on the monotonic clock)."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[AccountRec, float]] = {}
        self._lock = threading.Lock()

    def get(self, token_sha256: str) -> AccountRec | None:
        """The remembered account, if it is fresh."""
        hit = self._entries.get(token_sha256)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, token_sha256: str, account: AccountRec) -> None:
        """Remember an account found in the database."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_sha256] = (account, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        """Forget everything (a token was revoked)."""
        with self._lock:
            self._entries.clear()
