"""Canonical JSON signatures and ids."""

from __future__ import annotations

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from flopex.domain.ids import has_prefix, new_id
from flopex.domain.signing import canonical_json, load_public_key, public_key_b64, sign, verify


def test_canonical_json_is_key_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_signature_verifies_and_any_change_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    pub = load_public_key(public_key_b64(key))
    assert pub is not None
    payload = {"attempt_id": "att_1", "duration_ms": 1000}
    sig = sign(key, payload)
    assert verify(pub, payload, sig)
    assert not verify(pub, payload | {"duration_ms": 1001}, sig)
    other = load_public_key(public_key_b64(Ed25519PrivateKey.generate()))
    assert other is not None
    assert not verify(other, payload, sig)
    assert not verify(pub, payload, "not-base64!")


def test_malformed_public_key_is_none() -> None:
    assert load_public_key("abc") is None


def test_ids_are_prefixed_unique_and_time_sortable() -> None:
    a = new_id("job", now_ms=1_000)
    b = new_id("job", now_ms=2_000)
    assert has_prefix(a, "job")
    assert a < b
    assert len({new_id("job") for _ in range(1000)}) == 1000


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json)
def test_canonical_json_is_byte_for_byte_rfc_8785(value: object) -> None:
    """The fast path writes what the reference JCS encoder writes (non-ASCII keys, control
    characters and surrogates included: those fall back to the reference)."""
    try:
        reference = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == reference


def test_floats_and_huge_integers_take_the_reference_encoder() -> None:
    assert canonical_json({"x": 1.5, "n": 10**16 // 10**10}) == rfc8785.dumps(
        {"x": 1.5, "n": 10**6}
    )
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"n": 2**60})


def test_a_lone_surrogate_is_refused_as_the_reference_refuses_it() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json("\ud800")
