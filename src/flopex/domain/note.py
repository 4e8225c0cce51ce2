"""Signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint) and witness cosignatures
(C2SP tlog-cosignature), with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. The key ID binds the name, the signature type and
the public key: ``SHA-256(name || 0x0A || type || public key)[:4]`` (type 0x01 for a plain Ed25519
note signature, 0x04 for a timestamped cosignature). A checkpoint is the note text
``<origin>\\n<tree size>\\n<base64 root hash>\\n`` (then optional extension lines).

A cosignature signs ``cosignature/v1\\ntime <unix seconds>\\n`` followed by the checkpoint text, and
its signature bytes are ``key ID || u64 big-endian timestamp || Ed25519 signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 64


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed or does not verify."""


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte Ed25519 public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key ID of a named key for one signature type."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def verifier_key(
    name: str, key: Ed25519PrivateKey | Ed25519PublicKey, alg: int = ALG_ED25519
) -> str:
    """The ``name+hexid+base64(type||key)`` form of a public key (as Go's sumdb/note); type 0x01
    for a note signer, 0x04 for a witness's cosignatures."""
    _check_name(name)
    pub = raw_public_key(key)
    kid = key_id(name, alg, pub).hex()
    return f"{name}+{kid}+{base64.b64encode(bytes([alg]) + pub).decode()}"


@dataclass(frozen=True)
class Verifier:
    """A trusted key: name, signature type and the 32-byte Ed25519 public key."""

    name: str
    public_key: bytes
    alg: int = ALG_ED25519

    @property
    def key_id(self) -> bytes:
        """This key's 4-byte ID."""
        return key_id(self.name, self.alg, self.public_key)


def parse_verifier_key(vkey: str) -> Verifier:
    """Read a ``name+hexid+base64(type||key)`` verifier key, checking its ID."""
    parts = vkey.split("+", 2)  # the name has no "+", the base64 key may
    if len(parts) != 3:
        raise NoteError("a verifier key is name+keyid+base64key")
    name, hex_id, b64 = parts
    _check_name(name)
    try:
        raw = base64.b64decode(b64, validate=True)
        expected_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"malformed verifier key: {exc}") from None
    if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1) or len(expected_id) != 4:
        raise NoteError("only Ed25519 keys (type 0x01, or 0x04 for a witness) are supported")
    verifier = Verifier(name, raw[1:], raw[0])
    if verifier.key_id != expected_id:
        raise NoteError("the verifier key's ID does not match its name and key")
    return verifier


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes  # after the key ID

    def line(self) -> str:
        """The signature line, with its newline."""
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {blob}\n"


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters")


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """A note of ``text`` signed by ``key`` under ``name``."""
    _check_text(text)
    _check_name(name)
    sig = NoteSignature(
        name, key_id(name, ALG_ED25519, raw_public_key(key)), key.sign(text.encode())
    )
    return text + "\n" + sig.line()


def open_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and its signature lines (nothing is verified here)."""
    if not note.endswith("\n"):
        raise NoteError("a note must end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a note needs a blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    sigs: list[NoteSignature] = []
    for line in block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        _check_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {name} is not base64") from None
        if len(raw) < 5:
            raise NoteError(f"signature of {name} is too short")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    if not sigs or len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"a note carries 1 to {MAX_SIGNATURES} signatures")
    return text, sigs


def _ed25519_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_note(note: str, verifier: Verifier) -> str:
    """The note's text if ``verifier`` signed it; :class:`NoteError` otherwise.

    Signatures of other keys are ignored; a signature that claims this key but fails is an error.
    """
    text, sigs = open_note(note)
    mine = [s for s in sigs if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        raise NoteError(f"the note is not signed by {verifier.name}")
    if not all(_ed25519_ok(verifier.public_key, s.signature, text.encode()) for s in mine):
        raise NoteError(f"the signature of {verifier.name} does not verify")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement: its origin, tree size and root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint as note text."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """Read checkpoint note text (after the note was verified)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash line")
    origin, size_s, root_s, *ext = lines[:-1]
    if not origin:
        raise NoteError("the checkpoint origin is empty")
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise NoteError(f"checkpoint size {size_s!r} is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """A witness's timestamped cosignature (type 0x04) on checkpoint text."""
    _check_text(text)
    _check_name(name)
    if not 0 <= timestamp < 2**63:
        raise NoteError("cosignature timestamp out of range")
    kid = key_id(name, ALG_COSIGNATURE_V1, raw_public_key(key))
    sig = key.sign(_cosigned_message(text, timestamp))
    return NoteSignature(name, kid, struct.pack(">Q", timestamp) + sig)


def verify_cosignature(note: str, witness: Verifier) -> int:
    """The timestamp of ``witness``'s valid cosignature on the note; :class:`NoteError` else."""
    cosigner = Verifier(witness.name, witness.public_key, ALG_COSIGNATURE_V1)
    text, sigs = open_note(note)
    mine = [s for s in sigs if s.name == cosigner.name and s.key_id == cosigner.key_id]
    if not mine:
        raise NoteError(f"the note is not cosigned by {witness.name}")
    for s in mine:
        if len(s.signature) != 8 + 64:
            raise NoteError(f"the cosignature of {witness.name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", s.signature[:8])
        if not _ed25519_ok(
            cosigner.public_key, s.signature[8:], _cosigned_message(text, timestamp)
        ):
            raise NoteError(f"the cosignature of {witness.name} does not verify")
    (timestamp,) = struct.unpack(">Q", mine[0].signature[:8])
    return int(timestamp)
