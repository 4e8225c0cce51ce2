"""What every use case needs: the store, the exchange key, a clock, the rules' settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.domain.matching import Terms
from flopex.service.ports import BlobStore, Store
from flopex.service.token_cache import TokenCache


class Clock(Protocol):
    """The one clock: milliseconds since the epoch, UTC."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time."""

    def now_ms(self) -> int:
        """Now, in ms since the epoch."""
        return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Rules:
    """Exchange settings the use cases apply."""

    fee_bps: int = 500
    lease_ttl_s: float = 15.0
    claim_ttl_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    max_attempts: int = 3
    default_time_limit_s: int = 3600
    max_blob_bytes: int = 256 << 20
    log_origin: str = "flopex.local/exchange"

    @property
    def terms(self) -> Terms:
        """The placement terms."""
        return Terms(fee_bps=self.fee_bps, default_time_limit_s=self.default_time_limit_s)


@dataclass
class Context:
    """Dependencies of the service layer, built by the composition root."""

    store: Store
    blobs: BlobStore
    key: Ed25519PrivateKey
    rules: Rules = field(default_factory=Rules)
    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenCache = field(default_factory=TokenCache)
    # hashes of complete log subtrees (immutable once integrated), shared by proof reads
    log_nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)
    log_signed_size: int = 0  # the newest checkpoint size this process has seen
    on_work: Callable[[set[str]], None] = lambda node_ids: None

    def now_ms(self) -> int:
        """The injected clock's now."""
        return self.clock.now_ms()
