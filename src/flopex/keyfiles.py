"""Private keys and secret tokens in a data dir, mode 0600 (the one place that writes them)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.errors import LocalError


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """Load the Ed25519 key at ``path`` or create it (0600); returns (key, created)."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise LocalError(
                f"{path} is not a valid Ed25519 private key: {exc}",
                code="key.invalid",
                hint="restore the key file from a backup, or move it away to create a new one",
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LocalError(f"{path} is not an Ed25519 key", code="key.invalid")
        return key, False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(path, pem)
    return key, True


def load_or_create_token(path: Path, prefix: str) -> tuple[str, bool]:
    """Load the secret token at ``path`` or create a new random one (0600)."""
    if path.exists():
        return path.read_text("utf-8").strip(), False
    token = f"{prefix}{secrets.token_urlsafe(32)}"
    _write_private(path, token.encode() + b"\n")
    return token, True


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    _write_private(path, text.encode("utf-8"))
