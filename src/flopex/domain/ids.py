"""Opaque, time-sortable ids with a type prefix (``job_01h...``): cursors can page by id."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars (80 bits)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{prefix}_{_b32(ms, 10)}{_b32(secrets.randbits(80), 16)}"


def has_prefix(value: str, prefix: str) -> bool:
    """Whether ``value`` looks like an id of the given prefix."""
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
