"""Signed notes, checkpoints and cosignatures (C2SP), against the Go sumdb/note reference."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.domain.note import (
    Checkpoint,
    NoteError,
    Verifier,
    cosign,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    raw_public_key,
    sign_note,
    verifier_key,
    verify_cosignature,
    verify_note,
)

# golang.org/x/mod/sumdb/note's example key and note.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    key = Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)
    assert verifier_key("PeterNeumann", key) == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_NOTE


def test_the_go_reference_note_verifies_with_its_verifier_key() -> None:
    assert verify_note(GO_NOTE, parse_verifier_key(GO_VKEY)) == GO_TEXT


def test_a_changed_text_or_signature_does_not_verify() -> None:
    verifier = parse_verifier_key(GO_VKEY)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(GO_NOTE.replace("cryptography", "cryptograph1"), verifier)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(GO_NOTE.replace("Zb6KE6", "Zb6KE7"), verifier)


def test_signatures_of_unknown_keys_are_ignored_but_one_known_is_needed() -> None:
    other = Ed25519PrivateKey.generate()
    extra = sign_note(GO_TEXT, "someone.else", other).split("\n\n", 1)[1]
    both = GO_NOTE + extra
    assert verify_note(both, parse_verifier_key(GO_VKEY)) == GO_TEXT
    with pytest.raises(NoteError, match="not signed by"):
        verify_note(both, Verifier("nobody", raw_public_key(Ed25519PrivateKey.generate())))


def test_mangled_verifier_keys_are_refused() -> None:
    for bad in (
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # wrong ID
        GO_VKEY.replace("PeterNeumann", "Peter"),  # ID no longer matches the name
        "PeterNeumann+c74f20a3",
        GO_VKEY[:-4],
    ):
        with pytest.raises(NoteError):
            parse_verifier_key(bad)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,  # no signatures
        GO_NOTE[:-1],  # no final newline
        GO_NOTE.replace("\u2014 ", "- "),
        GO_NOTE.replace("If you", "If\tyou"),
        GO_TEXT + "\n\u2014 PeterNeumann !!!\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note)


def test_a_checkpoint_round_trips_through_a_signed_note() -> None:
    key = Ed25519PrivateKey.generate()
    cp = Checkpoint("flopex.test/log", 20852163, bytes(range(32)))
    assert (
        cp.text() == f"flopex.test/log\n20852163\n{base64.b64encode(bytes(range(32))).decode()}\n"
    )
    note = sign_note(cp.text(), "flopex.test/log", key)
    text = verify_note(note, Verifier("flopex.test/log", raw_public_key(key)))
    assert parse_checkpoint(text) == cp


@pytest.mark.parametrize(
    "text",
    [
        "origin\n10\n",
        "origin\n010\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n10\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "\n10\n" + base64.b64encode(bytes(32)).decode() + "\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


def test_a_witness_cosignature_verifies_and_carries_its_time() -> None:
    log_key, witness_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    text = Checkpoint("flopex.test/log", 5, bytes(32)).text()
    note = sign_note(text, "flopex.test/log", log_key)
    cosigned = note + cosign(text, "witness.test/w1", witness_key, 1_679_315_147).line()
    witness = Verifier("witness.test/w1", raw_public_key(witness_key))
    assert verify_cosignature(cosigned, witness) == 1_679_315_147
    assert verify_note(cosigned, Verifier("flopex.test/log", raw_public_key(log_key))) == text
    # the cosignature is not a plain note signature by the same key (domain separation)
    with pytest.raises(NoteError):
        verify_note(cosigned, witness)
    forged = cosigned.replace("\n5\n", "\n6\n")
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(forged, witness)


def test_a_verifier_key_whose_base64_contains_a_plus_parses() -> None:
    # transparency-dev/formats' test key: the base64 of its key material contains '+'
    verifier = parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert verifier.name == "TEST" and len(verifier.public_key) == 32
