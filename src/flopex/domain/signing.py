"""Canonical JSON (RFC 8785) and Ed25519 signatures over it: what contracts and reports sign."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_SAFE_INT = 2**53 - 1  # JCS writes numbers as IEEE doubles: larger ints are not exact


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what ``json.dumps`` writes exactly as RFC 8785 does: strings,
    safe integers, booleans, null, lists, and objects with ASCII keys (so that sorting by code
    point is sorting by UTF-16 unit). Floats take the reference encoder."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value: the same object always gives the same bytes.

    Plain values (all our events, reports and contracts) take ``json.dumps`` with sorted keys
    and no spaces, which writes them byte for byte as JCS does and is several times faster than
    the reference encoder; anything else (floats, huge integers, lone surrogates) takes the
    reference encoder. A property test holds the two equal."""
    if _plain(value):
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.encode()
        except UnicodeEncodeError:  # a lone surrogate: JCS refuses or escapes it
            pass
    out: bytes = rfc8785.dumps(value)
    return out


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public_key(b64: str) -> Ed25519PublicKey | None:
    """Parse a base64 raw Ed25519 public key; ``None`` when malformed."""
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        return None


def sign(key: Ed25519PrivateKey, payload: Any) -> str:
    """Base64 Ed25519 signature over the canonical JSON of ``payload``."""
    return sign_bytes(key, canonical_json(payload))


def sign_bytes(key: Ed25519PrivateKey, canonical: bytes) -> str:
    """Base64 Ed25519 signature over bytes already in canonical form."""
    return base64.b64encode(key.sign(canonical)).decode()


def verify(public_key: Ed25519PublicKey, payload: Any, signature_b64: str) -> bool:
    """Whether ``signature_b64`` signs the canonical JSON of ``payload``."""
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
