"""The exchange's use cases on SQLite and PostgreSQL: placement, escrow, claim, settlement,
provider loss, fencing, cancellation, idempotency. Every test that moves money checks that
balances sum to zero."""

from __future__ import annotations

import pytest

from flopex.domain.ledger import Purpose
from flopex.domain.states import AttemptState, JobState, Reason
from flopex.domain.usage import Outcome
from flopex.errors import (
    AttemptFenced,
    InsufficientFunds,
    NotFound,
    RequestInvalid,
    SpecInvalid,
    Unauthorized,
)
from flopex.service import accounts, attempts, blobs, jobs, market
from flopex.service.context import Context
from tests import builders as b
from tests.conftest import FakeClock

CREDIT = b.CREDIT


def test_submit_places_on_cheapest_feasible_offer_and_holds_escrow(ctx: Context) -> None:
    b.provider(ctx, "p-tokyo", region="jp-tokyo", price_credits=2)
    cheap = b.provider(ctx, "p-kyushu", region="jp-kyushu", price_credits=1)
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(estimated_hours=1), workdir_sha256=None, idem_key=None)
    assert job.state == JobState.MATCHED
    view = jobs.get(ctx, alice, job.id)
    assert view.attempts[0].offer_id == cheap.offer.id
    bal = accounts.balances(ctx, alice)[Purpose.AVAILABLE]
    # hold = 1 credit/h x 2 h (2 x estimate) + 5% fee
    assert bal.debits_pending == 2 * CREDIT + 100_000
    assert bal.available == 100 * CREDIT - 2_100_000
    b.assert_money_conserved(ctx)


def test_completion_posts_used_time_plus_fee_and_voids_the_rest(
    ctx: Context, clock: FakeClock
) -> None:
    p = b.provider(ctx, "p1", price_credits=3.6)  # 1 µcr per ms
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    clock.advance(10)
    rep, sig = b.report(p, a.attempt, duration_ms=8_000)
    attempt, done = attempts.complete(ctx, p.account, rep, sig)
    assert done.state == JobState.SUCCEEDED
    assert attempt.billed_ms == 8_000  # min(server-seen 10 s, signed 8 s)
    assert attempt.cost_ucr == 8_000
    assert attempt.fee_ucr == 400
    assert done.settled_ms is not None
    assert accounts.balances(ctx, alice)[Purpose.AVAILABLE].available == 100 * CREDIT - 8_400
    assert accounts.balances(ctx, p.account)[Purpose.EARNINGS].net_posted == 8_000
    with ctx.store.read() as tx:
        assert tx.ledger.pending_of_job(job.id) == []
    b.assert_money_conserved(ctx)


def test_job_error_pays_used_time_and_fails_the_job(ctx: Context, clock: FakeClock) -> None:
    p = b.provider(ctx, "p1", price_credits=3.6)
    alice = b.account(ctx, "alice", "consumer", credits=10)
    jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    clock.advance(2)
    rep, sig = b.report(p, a.attempt, duration_ms=2_000, outcome=Outcome.JOB_ERROR, exit_code=3)
    attempt, done = attempts.complete(ctx, p.account, rep, sig)
    assert (done.state, done.reason) == (JobState.FAILED, Reason.JOB_ERROR)
    assert attempt.exit_code == 3
    assert attempt.cost_ucr == 2_000
    b.assert_money_conserved(ctx)


def test_insufficient_balance_is_refused_and_nothing_is_held(ctx: Context) -> None:
    b.provider(ctx, "p1")
    bob = b.account(ctx, "bob", "consumer")
    with pytest.raises(InsufficientFunds):
        jobs.submit(ctx, bob, b.spec(), workdir_sha256=None, idem_key=None)
    assert jobs.list_jobs(ctx, bob, limit=10, after=None, state=None) == []
    assert accounts.balances(ctx, bob)[Purpose.AVAILABLE].debits_pending == 0


def test_job_waits_queued_when_no_offer_can_afford_then_explains_why(ctx: Context) -> None:
    b.provider(ctx, "p1", price_credits=50)
    carol = b.account(ctx, "carol", "consumer", credits=1)
    job = jobs.submit(ctx, carol, b.spec(), workdir_sha256=None, idem_key=None)
    assert job.state == JobState.QUEUED
    found = jobs.explain(ctx, carol, job.id)
    assert len(found.verdicts) == 1
    assert not found.verdicts[0].feasible
    assert "exceeds available" in found.verdicts[0].reasons[0]


def test_explain_names_region_and_price_cap_rejections(ctx: Context) -> None:
    b.provider(ctx, "p-us", region="us-west", price_credits=1)
    b.provider(ctx, "p-jp", region="jp-tokyo", price_credits=9)
    alice = b.account(ctx, "alice", "consumer", credits=100)
    spec = b.spec(max_price_per_hour=2)
    spec["resources"]["region"] = "jp-tokyo"
    job = jobs.submit(ctx, alice, spec, workdir_sha256=None, idem_key=None)
    assert job.state == JobState.QUEUED
    reasons = sorted(r for v in jobs.explain(ctx, alice, job.id).verdicts for r in v.reasons)
    assert any("region us-west is not jp-tokyo" in r for r in reasons)
    assert any("above cap" in r for r in reasons)


def test_queued_job_is_placed_when_capacity_appears(ctx: Context) -> None:
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    assert job.state == JobState.QUEUED
    b.provider(ctx, "late")
    assert jobs.get(ctx, alice, job.id).job.state == JobState.MATCHED


def test_provider_lost_requeues_on_another_node_and_charges_once(
    ctx: Context, clock: FakeClock
) -> None:
    first = b.provider(ctx, "p1", price_credits=1)
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    lost = b.claim_one(ctx, first)
    second = b.provider(ctx, "p2", price_credits=2)
    clock.advance(ctx.rules.lease_ttl_s + 1)  # p1 stops heartbeating: its lease expires
    b.heartbeat(ctx, second)  # p2 stays alive
    assert attempts.reap(ctx) == 1
    view = jobs.get(ctx, alice, job.id)
    assert view.attempts[0].reason == Reason.PROVIDER_LOST
    assert view.attempts[0].cost_ucr == 0
    assert view.attempts[1].node_id == second.node.id
    a2 = b.claim_one(ctx, second)
    clock.advance(3)
    rep, sig = b.report(second, a2.attempt, duration_ms=3_000)
    attempts.complete(ctx, second.account, rep, sig)
    # the late first node is fenced: it cannot complete or be paid
    late, late_sig = b.report(first, lost.attempt, duration_ms=5_000)
    with pytest.raises(AttemptFenced):
        attempts.complete(ctx, first.account, late, late_sig)
    assert accounts.balances(ctx, first.account)[Purpose.EARNINGS].net_posted == 0
    done = jobs.get(ctx, alice, job.id).job
    assert done.state == JobState.SUCCEEDED
    assert done.cost_ucr == -(-a2.attempt.hourly_ucr * 3_000 // 3_600_000)  # rounded up
    b.assert_money_conserved(ctx)


def test_attempts_exhausted_fails_the_job_and_refunds(ctx: Context, clock: FakeClock) -> None:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(max_attempts=1), workdir_sha256=None, idem_key=None)
    b.claim_one(ctx, p)
    clock.advance(ctx.rules.lease_ttl_s + 1)
    attempts.reap(ctx)
    done = jobs.get(ctx, alice, job.id).job
    assert (done.state, done.reason) == (JobState.FAILED, Reason.ATTEMPTS_EXHAUSTED)
    assert accounts.balances(ctx, alice)[Purpose.AVAILABLE].available == 100 * CREDIT
    b.assert_money_conserved(ctx)


def test_heartbeats_keep_the_lease_alive(ctx: Context, clock: FakeClock) -> None:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    for _ in range(5):
        clock.advance(ctx.rules.lease_ttl_s - 1)
        res = market.heartbeat(
            ctx, p.account, p.node.id, [(a.attempt.id, a.attempt.lease_epoch)], False
        )
        assert res.renewed == [a.attempt.id]
        assert attempts.reap(ctx) == 0
    assert jobs.get(ctx, alice, job.id).job.state == JobState.RUNNING


def test_no_attempt_is_claimed_twice(ctx: Context) -> None:
    p = b.provider(ctx, "p1", cpus=2)
    alice = b.account(ctx, "alice", "consumer", credits=100)
    for _ in range(3):
        jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    got = attempts.claim(ctx, p.account, p.node.id, 10)
    assert len(got) == 2  # capacity 2 cpus
    assert attempts.claim(ctx, p.account, p.node.id, 10) == []


def test_cancel_running_job_is_delivered_by_heartbeat_and_pays_used_time(
    ctx: Context, clock: FakeClock
) -> None:
    from flopex.service import market

    p = b.provider(ctx, "p1", price_credits=3.6)
    alice = b.account(ctx, "alice", "consumer", credits=10)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    jobs.cancel(ctx, alice, job.id)
    beat = market.heartbeat(
        ctx, p.account, p.node.id, [(a.attempt.id, a.attempt.lease_epoch)], False
    )
    assert beat.cancel == [a.attempt.id]
    clock.advance(1)
    rep, sig = b.report(p, a.attempt, duration_ms=1_000, outcome=Outcome.CANCELLED, exit_code=-15)
    attempt, done = attempts.complete(ctx, p.account, rep, sig)
    assert (done.state, done.reason) == (JobState.CANCELLED, Reason.USER_CANCELLED)
    assert attempt.cost_ucr == 1_000
    b.assert_money_conserved(ctx)


def test_cancel_queued_job_is_immediate_and_free(ctx: Context) -> None:
    alice = b.account(ctx, "alice", "consumer", credits=10)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    done = jobs.cancel(ctx, alice, job.id)
    assert done.state == JobState.CANCELLED
    assert accounts.balances(ctx, alice)[Purpose.AVAILABLE].available == 10 * CREDIT


def test_another_accounts_job_is_not_found(ctx: Context) -> None:
    alice = b.account(ctx, "alice", "consumer", credits=10)
    eve = b.account(ctx, "eve", "consumer", credits=10)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    with pytest.raises(NotFound):
        jobs.get(ctx, eve, job.id)
    with pytest.raises(NotFound):
        jobs.cancel(ctx, eve, job.id)


def test_node_completing_an_attempt_it_never_held_gets_404(ctx: Context) -> None:
    holder = b.provider(ctx, "p1")
    other = b.provider(ctx, "p2")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = (
        b.claim_one(ctx, holder)
        if attempts.claim(ctx, other.account, other.node.id, 1) == []
        else None
    )
    assert a is not None
    rep, sig = b.report(other, a.attempt)
    with pytest.raises(NotFound):
        attempts.complete(ctx, other.account, rep, sig)


def test_forged_usage_signature_is_refused(ctx: Context) -> None:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    rep, _ = b.report(p, a.attempt)
    _, forged = b.report(p, a.attempt, duration_ms=1)
    with pytest.raises(RequestInvalid) as info:
        attempts.complete(ctx, p.account, rep, forged)
    assert info.value.code == "attempt.bad_signature"
    assert jobs.get(ctx, alice, a.job.id).attempts[0].state == AttemptState.RUNNING


def test_outputs_are_recorded_and_belong_to_the_consumer(ctx: Context) -> None:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    eve = b.account(ctx, "eve", "consumer")
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    out = b.output(b"42\n")
    blobs.put(ctx, p.account, out.sha256, b"42\n")
    rep, sig = b.report(p, a.attempt, outputs=(out,))
    attempts.complete(ctx, p.account, rep, sig)
    assert [o.sha256 for o in jobs.outputs(ctx, alice, job.id)] == [out.sha256]
    assert blobs.open_for(ctx, alice, out.sha256).read_bytes() == b"42\n"
    with pytest.raises(NotFound):
        blobs.exists_for(ctx, eve, out.sha256)


def test_idempotent_submit_returns_the_first_job(ctx: Context) -> None:
    b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    first = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key="k1")
    again = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key="k1")
    assert first.id == again.id
    assert len(jobs.list_jobs(ctx, alice, limit=10, after=None, state=None)) == 1


def test_invalid_spec_is_refused_with_the_field_named(ctx: Context) -> None:
    alice = b.account(ctx, "alice", "consumer", credits=10)
    with pytest.raises(SpecInvalid) as info:
        jobs.submit(
            ctx,
            alice,
            {"run": "x", "resources": {"acclerators": "H100:1"}},
            workdir_sha256=None,
            idem_key=None,
        )
    assert "acclerators" in info.value.message


def test_matched_but_unclaimed_attempt_expires_and_is_rematched(
    ctx: Context, clock: FakeClock
) -> None:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    clock.advance(ctx.rules.claim_ttl_s + 1)
    b.heartbeat(ctx, p)  # node alive, just slow to claim
    attempts.reap(ctx)
    view = jobs.get(ctx, alice, job.id)
    assert view.attempts[0].reason == Reason.CLAIM_EXPIRED
    assert view.job.state == JobState.MATCHED
    assert len(view.attempts) == 2
    b.assert_money_conserved(ctx)


def test_a_node_that_lost_a_lease_gets_no_new_work_until_it_heartbeats(
    ctx: Context, clock: FakeClock
) -> None:
    p = b.provider(ctx, "p1", cpus=2)
    alice = b.account(ctx, "alice", "consumer", credits=100)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    b.claim_one(ctx, p)
    clock.advance(ctx.rules.lease_ttl_s - 1)
    attempts.claim(ctx, p.account, p.node.id, 1)  # a claim poll, but no heartbeat: still alive?
    clock.advance(2)  # the lease lapses, though the node polled a moment ago
    assert attempts.reap(ctx) == 1
    view = jobs.get(ctx, alice, job.id)
    assert view.job.state == JobState.QUEUED  # not matched straight back to the silent node
    assert len(view.attempts) == 1
    b.heartbeat(ctx, p)  # it comes back
    attempts.reap(ctx)
    assert jobs.get(ctx, alice, job.id).job.state == JobState.MATCHED
    b.assert_money_conserved(ctx)


def test_a_revoked_token_is_refused_at_once(ctx: Context) -> None:
    alice = b.account(ctx, "alice", "consumer")
    token_id, token = accounts.rotate_token(ctx, alice)
    assert accounts.authenticate(ctx, token).id == alice.id  # now remembered for a moment
    accounts.revoke_token(ctx, alice, token_id)
    with pytest.raises(Unauthorized):
        accounts.authenticate(ctx, token)


def test_a_hold_that_fails_half_way_leaves_nothing_pending(ctx: Context) -> None:
    """Placement makes cost and fee holds in one ledger call: if the second cannot be made,
    nothing is written, so no pending transfer outlives its placement."""
    from flopex.domain.ledger import PLATFORM, ledger_account_id
    from flopex.service.records import Hold

    alice = b.account(ctx, "alice", "consumer", credits=1)
    mine = ledger_account_id(alice.id, Purpose.AVAILABLE)
    fees = ledger_account_id(PLATFORM, Purpose.FEES)
    holds = [
        Hold("h1", mine, fees, CREDIT // 2, None, "a"),
        Hold("h2", mine, fees, CREDIT, None, "b"),
    ]
    with ctx.store.write() as tx:
        with pytest.raises(InsufficientFunds):
            tx.ledger.hold_many(holds, now_ms=1)  # together they overdraw
        assert tx.ledger.transfers_by_id(["h1", "h2"]) == {}
        made = tx.ledger.hold_many(holds[:1], now_ms=1)
        assert [t.state for t in made] == ["pending"]
    assert accounts.balances(ctx, alice)[Purpose.AVAILABLE].available == CREDIT // 2
    b.assert_money_conserved(ctx)


def test_a_batch_is_submitted_whole_and_placed(ctx: Context) -> None:
    p = b.provider(ctx, "p1", cpus=8)
    alice = b.account(ctx, "alice", "consumer", credits=10)
    items = [jobs.Submission(b.spec(), None, f"k/{i}") for i in range(3)]
    views = jobs.submit_many(ctx, alice, items)
    assert [v.job.state for v in views] == [JobState.MATCHED] * 3
    assert len(attempts.claim(ctx, p.account, p.node.id, 10)) == 3
    again = jobs.submit_many(ctx, alice, items)  # the same keys: the same jobs, nothing new
    assert [v.job.id for v in again] == [v.job.id for v in views]
    b.assert_money_conserved(ctx)


def test_a_batch_with_one_bad_job_queues_and_holds_nothing(ctx: Context) -> None:
    b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    bad = {"name": "t", "resources": {"cpus": 1}, "run": "x", "flopex": {"budget": -1}}
    items = [jobs.Submission(b.spec()), jobs.Submission(b.spec()), jobs.Submission(bad)]
    with pytest.raises(SpecInvalid) as info:
        jobs.submit_many(ctx, alice, items)
    assert info.value.message.startswith("jobs[2]: ") and info.value.details["index"] == 2
    missing = jobs.Submission(b.spec(), "ab" * 32)  # fails inside the transaction, after job 0
    with pytest.raises(NotFound) as late:  # was placed and held: all of it is undone
        jobs.submit_many(ctx, alice, [jobs.Submission(b.spec()), missing])
    assert late.value.details["index"] == 1 and late.value.code == "blob.not_found"
    poor = b.account(ctx, "poor", "consumer")  # no credits: the first job already fails
    with pytest.raises(InsufficientFunds) as short:
        jobs.submit_many(ctx, poor, [jobs.Submission(b.spec())])
    assert short.value.details["index"] == 0
    ledger_before = accounts.balances(ctx, alice)[Purpose.AVAILABLE]
    assert jobs.list_jobs(ctx, alice, limit=10, after=None, state=None) == []
    assert ledger_before.debits_pending == 0 and ledger_before.available == 10 * CREDIT
    b.assert_money_conserved(ctx)


def test_completions_in_one_batch_are_settled_or_refused_each_on_its_own(
    ctx: Context, clock: FakeClock
) -> None:
    p = b.provider(ctx, "p1", cpus=8)
    alice = b.account(ctx, "alice", "consumer", credits=10)
    for _ in range(3):
        jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    got = attempts.claim(ctx, p.account, p.node.id, 3)
    clock.advance(1)
    ok1, forged, ok2 = (b.report(p, a.attempt, duration_ms=1_000) for a in got)
    forged = (forged[0], ok1[1])  # another report's signature
    done = attempts.complete_many(ctx, p.account, [ok1, forged, ok2, ok1])
    assert [type(d).__name__ for d in done] == ["tuple", "RequestInvalid", "tuple", "AttemptFenced"]
    assert isinstance(done[1], RequestInvalid) and done[1].code == "attempt.bad_signature"
    states = [jobs.get(ctx, alice, a.job.id).job.state for a in got]
    assert states == [JobState.SUCCEEDED, JobState.RUNNING, JobState.SUCCEEDED]  # forged: untouched
    with ctx.store.read() as tx:
        assert tx.ledger.pending_of_job(got[1].job.id)  # its escrow still held, nothing posted
    b.assert_money_conserved(ctx)
