"""Salted commitments to private content: what the public log holds instead of the content.

``SHA-256(salt || content)`` with a fresh 32-byte salt per commitment: the log proves the content
was fixed when the event was written, without showing it; the salt (kept by the exchange and the
parties) opens it. Without the salt, guessing a low-entropy content (a short spec, a file name)
is hopeless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SALT_BYTES = 32


def new_salt() -> str:
    """A fresh salt, hex."""
    return secrets.token_hex(SALT_BYTES)


def commit(salt_hex: str, content: bytes) -> str:
    """Hex ``SHA-256(salt || content)``."""
    return hashlib.sha256(bytes.fromhex(salt_hex) + content).hexdigest()


def opens(commitment: str, salt_hex: str, content: bytes) -> bool:
    """Whether ``(salt, content)`` opens ``commitment``."""
    try:
        return hmac.compare_digest(commit(salt_hex, content), commitment)
    except ValueError:  # a salt that is not hex
        return False
