"""The log of a busy exchange replays to its ledger and job states, hides private content behind
commitments its parties can open, carries the node-signed reports that billing rests on, and
names the first event a dishonest exchange would have to forge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flopex.domain.commitment import opens
from flopex.domain.replay import Replay, ReplayError, check_opening
from flopex.domain.signing import load_public_key, verify
from flopex.domain.states import JobState
from flopex.domain.usage import Outcome
from flopex.service import accounts, attempts, blobs, jobs, market
from flopex.service import log as event_log
from flopex.service.context import Context
from tests import builders as b
from tests.conftest import FakeClock

SECRET_RUN = "echo the-secret-recipe-42"


def _busy(ctx: Context, clock: FakeClock) -> dict[str, str]:
    """Completion with outputs, job error, cancel while running, provider lost, drained,
    claim expired, cancel while queued: every way an attempt ends."""
    p1 = b.provider(ctx, "p1", price_credits=3.6)
    alice = b.account(ctx, "alice-the-consumer", "consumer", credits=100)
    spec = {"name": "t", "resources": {"cpus": 1}, "run": SECRET_RUN}
    ids: dict[str, str] = {}
    # completed, with an output
    ids["done"] = jobs.submit(ctx, alice, spec, workdir_sha256=None, idem_key=None).id
    a = b.claim_one(ctx, p1)
    out = b.output(b"42\n", path="private-name.txt")
    blobs.put(ctx, p1.account, out.sha256, b"42\n")
    clock.advance(2)
    rep, sig = b.report(p1, a.attempt, duration_ms=2_000, outputs=(out,))
    attempts.complete(ctx, p1.account, rep, sig)
    # job error
    ids["error"] = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None).id
    a = b.claim_one(ctx, p1)
    clock.advance(1)
    rep, sig = b.report(p1, a.attempt, duration_ms=900, outcome=Outcome.JOB_ERROR, exit_code=3)
    attempts.complete(ctx, p1.account, rep, sig)
    # cancelled while running (pays used time)
    ids["cancel"] = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None).id
    a = b.claim_one(ctx, p1)
    jobs.cancel(ctx, alice, ids["cancel"])
    clock.advance(1)
    rep, sig = b.report(p1, a.attempt, duration_ms=1_000, outcome=Outcome.CANCELLED)
    attempts.complete(ctx, p1.account, rep, sig)
    # drained by the node, then lost, then claim expired: all free, the job requeued
    moved = b.spec(max_attempts=5)
    ids["moved"] = jobs.submit(ctx, alice, moved, workdir_sha256=None, idem_key=None).id
    a = b.claim_one(ctx, p1)
    attempts.release(ctx, p1.account, a.attempt.id, a.attempt.lease_epoch)
    b.claim_one(ctx, p1)
    clock.advance(ctx.rules.lease_ttl_s + 1)
    attempts.reap(ctx)  # provider lost; p1 is silent now
    p2 = b.provider(ctx, "p2", price_credits=1)
    clock.advance(ctx.rules.claim_ttl_s + 1)
    b.heartbeat(ctx, p2)
    attempts.reap(ctx)  # the match on p2 was never claimed
    a = b.claim_one(ctx, p2)
    clock.advance(1)
    rep, sig = b.report(p2, a.attempt, duration_ms=1_000)
    attempts.complete(ctx, p2.account, rep, sig)
    # cancelled while queued
    market.withdraw_offer(ctx, p2.account, p2.offer.id)
    market.withdraw_offer(ctx, p1.account, p1.offer.id)
    ids["queued"] = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None).id
    jobs.cancel(ctx, alice, ids["queued"])
    ids["alice"] = alice.id
    return ids


def _entries(ctx: Context) -> list[str]:
    with ctx.store.read() as tx:
        size = tx.log_size()
    out: list[str] = []
    while len(out) < size:
        out += event_log.entries(ctx, len(out), size)
    return out


def _replay(events: list[dict[str, Any]]) -> Replay:
    r = Replay()
    for i, e in enumerate(events):
        r.apply(i, e)
    r.check_invariants()
    return r


def test_the_replay_rebuilds_every_balance_and_job_state(ctx: Context, clock: FakeClock) -> None:
    ids = _busy(ctx, clock)
    r = _replay([json.loads(e) for e in _entries(ctx)])
    with ctx.store.read() as tx:
        ledger = tx.ledger.all_balances()
        states = {i: tx.get_job(i) for k, i in ids.items() if k != "alice"}
    for account_id, balance in ledger.items():
        assert r.balances.get(account_id, None) is not None or balance.net_posted == 0
        if account_id in r.balances:
            assert r.balances[account_id].balance() == balance, account_id
    for job_id, job in states.items():
        assert job is not None and r.jobs[job_id] == job.state.value
    assert r.jobs[ids["moved"]] == JobState.SUCCEEDED.value
    assert not r.attempts, "every contracted attempt ended"
    b.assert_money_conserved(ctx)


def test_private_content_is_committed_and_only_its_party_opens_it(
    ctx: Context, clock: FakeClock
) -> None:
    ids = _busy(ctx, clock)
    text = _entries(ctx)
    whole = "\n".join(text)
    for private in (SECRET_RUN, "alice-the-consumer", "private-name.txt"):
        assert private not in whole, private
    mine = event_log.openings(ctx, 0, len(text), ids["alice"])
    assert mine, "alice can open her events"
    kinds = set()
    for index, fields in mine:
        event = json.loads(text[index])
        check_opening(index, event, fields)  # raises if a salt or content does not open
        kinds.add(event["kind"])
    assert {"account.created", "job.submitted", "attempt.ended"} <= kinds
    specs = [f["spec"]["content"] for _, f in mine if "spec" in f]
    assert any(SECRET_RUN in s for s in specs)
    others = {i for i, _ in event_log.openings(ctx, 0, len(text), "acc_nobody")}
    assert not others


def test_a_tampered_opening_does_not_open(ctx: Context, clock: FakeClock) -> None:
    ids = _busy(ctx, clock)
    text = _entries(ctx)
    index, fields = next(
        (i, f) for i, f in event_log.openings(ctx, 0, len(text), ids["alice"]) if "spec" in f
    )
    fields["spec"]["content"] = fields["spec"]["content"].replace("42", "43")
    with pytest.raises(ReplayError, match="does not match its commitment"):
        check_opening(index, json.loads(text[index]), fields)
    commitment = json.loads(text[index])["commit"]["spec"]
    assert not opens(commitment, "00" * 32, b"anything")


def test_a_completion_event_carries_the_nodes_signed_report(ctx: Context, clock: FakeClock) -> None:
    _busy(ctx, clock)
    events = [json.loads(e) for e in _entries(ctx)]
    keys = {e["node"]: e["public_key"] for e in events if e["kind"] == "node.registered"}
    signed = [e for e in events if e["kind"] == "attempt.ended" and "usage" in e]
    assert len(signed) == 4  # completed, job error, cancelled, the moved job's completion
    for e in signed:
        key = load_public_key(keys[e["usage"]["node_id"]])
        assert key is not None and verify(key, e["usage"], e["usage_sig"])
        assert e["billed_ms"] <= e["usage"]["duration_ms"]


def test_accounts_and_transfers_carry_the_index_of_their_events(
    ctx: Context, clock: FakeClock
) -> None:
    alice = b.account(ctx, "alice", "consumer", credits=10)
    p = b.provider(ctx, "p1")
    jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    clock.advance(1)
    rep, sig = b.report(p, a.attempt, duration_ms=1_000)
    attempts.complete(ctx, p.account, rep, sig)
    events = [json.loads(e) for e in _entries(ctx)]
    assert alice.log_index is not None
    created = events[alice.log_index]
    assert (created["kind"], created["account"]) == ("account.created", alice.id)
    moved = accounts.transfers(ctx, alice, 100, None)
    assert len(moved) == 3  # the mint, the cost hold, the fee hold
    for t in moved:
        assert t.log_index is not None and t.resolved_log_index is not None
        assert events[t.log_index]["transfer"] == t.id
        assert events[t.resolved_log_index]["transfer"] == t.id
        assert events[t.resolved_log_index]["kind"] == f"transfer.{t.state}"
    assert events[0]["kind"] == "log.genesis"


def _completion(ctx: Context, clock: FakeClock) -> tuple[list[dict[str, Any]], int]:
    p = b.provider(ctx, "p1", price_credits=3.6)
    alice = b.account(ctx, "alice", "consumer", credits=10)
    jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    clock.advance(2)
    rep, sig = b.report(p, a.attempt, duration_ms=2_000)
    attempts.complete(ctx, p.account, rep, sig)
    events = [json.loads(e) for e in _entries(ctx)]
    ended = next(i for i, e in enumerate(events) if e["kind"] == "attempt.ended")
    return events, ended


def _forge(events: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    forged = [dict(e) for e in events]
    forged[index] = forged[index] | changes
    return forged


def _posted_to(events: list[dict[str, Any]], hold: str, amount: int) -> list[dict[str, Any]]:
    forged = [dict(e) for e in events]
    for e in forged:
        if e.get("transfer") == hold and e["kind"] == "transfer.posted":
            e["posted_ucr"] = amount
    return forged


def test_billing_past_what_the_node_signed_is_caught(ctx: Context, clock: FakeClock) -> None:
    events, ended = _completion(ctx, clock)
    _replay(events)  # honest
    # the exchange bills 4 s where the node signed 2 s, with cost and escrow made to agree
    hold = f"hold:{events[ended]['attempt']}"
    forged = _posted_to(_forge(events, ended, billed_ms=4_000, cost_ucr=4_000), hold, 4_000)
    with pytest.raises(ReplayError, match="more than the node signed") as info:
        _replay(forged)
    assert info.value.index == ended


def test_a_report_the_node_did_not_sign_is_caught(ctx: Context, clock: FakeClock) -> None:
    events, ended = _completion(ctx, clock)
    usage = events[ended]["usage"] | {"duration_ms": 9_000}
    with pytest.raises(ReplayError, match="signature does not verify with its registered key"):
        _replay(_forge(events, ended, usage=usage))
    bare = {k: v for k, v in events[ended].items() if k not in ("usage", "usage_sig")}
    forged = [*events[:ended], bare, *events[ended + 1 :]]
    with pytest.raises(ReplayError, match="without a node report"):
        _replay(forged)


def test_a_charge_off_the_contract_or_the_escrow_is_caught(ctx: Context, clock: FakeClock) -> None:
    events, ended = _completion(ctx, clock)
    with pytest.raises(ReplayError, match="its contract gives"):
        _replay(_forge(events, ended, cost_ucr=events[ended]["cost_ucr"] + 1))
    hold = f"hold:{events[ended]['attempt']}"
    with pytest.raises(ReplayError, match="posted"):
        _replay(_posted_to(events, hold, events[ended]["cost_ucr"] - 1))
