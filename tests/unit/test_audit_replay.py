"""The audit's replay checks actors' signatures on another thread and still names the first bad
event: a forged signature, or an earlier one before a later broken rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.cli.audit_replay import PAGE, replay_events
from flopex.domain.replay import Replay, ReplayError
from flopex.domain.signing import canonical_json, public_key_b64, sign

KEY = Ed25519PrivateKey.generate()


def _signed(i: int) -> dict[str, Any]:
    facts = {"kind": "usage.reported", "attempt": f"att{i}", "duration_ms": i}
    return {"v": 1, "at_ms": i, **facts, "signer": public_key_b64(KEY), "sig": sign(KEY, facts)}


def _text(events: list[dict[str, Any]]) -> list[str]:
    return [canonical_json(e).decode() for e in events]


def test_honest_signed_events_replay_across_pages() -> None:
    events = [_signed(i) for i in range(PAGE * 2 + 7)]
    r = Replay()
    replay_events(r, 0, _text(events))
    assert r.events == len(events)


@pytest.mark.parametrize("bad", [0, 5, PAGE - 1, PAGE, PAGE * 2 + 3])
def test_a_forged_signature_is_named_by_its_index(bad: int) -> None:
    events = [_signed(i) for i in range(PAGE * 2 + 7)]
    events[bad]["duration_ms"] += 1  # the exchange changed what the actor signed
    with pytest.raises(ReplayError, match="signature") as info:
        replay_events(Replay(), 100, _text(events))
    assert info.value.index == 100 + bad


def test_a_bad_signature_before_a_broken_rule_is_the_one_named() -> None:
    events = [_signed(i) for i in range(10)]
    events[3]["sig"] = events[4]["sig"]
    events.append({"kind": "transfer.voided", "transfer": "t", "debit": "a", "credit": "b",
                   "amount_ucr": 1, "posted_ucr": 0})  # fmt: skip
    with pytest.raises(ReplayError) as info:
        replay_events(Replay(), 0, _text(events))
    assert info.value.index == 3


def test_an_event_that_is_not_json_is_named() -> None:
    with pytest.raises(ReplayError, match="not JSON") as info:
        replay_events(Replay(), 0, [json.dumps(_signed(0)), "{oops"])
    assert info.value.index == 1
