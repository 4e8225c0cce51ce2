"""The tamper-evident log: events appended with each change, integrated, signed and provable."""

from __future__ import annotations

import json

from flopex.domain import merkle
from flopex.domain.note import Verifier, parse_checkpoint, raw_public_key, verify_note
from flopex.service import attempts, jobs
from flopex.service import log as event_log
from flopex.service.context import Context
from tests import builders as b
from tests.conftest import FakeClock


def _lifecycle(ctx: Context, clock: FakeClock) -> str:
    p = b.provider(ctx, "p1")
    alice = b.account(ctx, "alice", "consumer", credits=10)
    job = jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
    a = b.claim_one(ctx, p)
    clock.advance(2)
    rep, sig = b.report(p, a.attempt, duration_ms=2_000)
    attempts.complete(ctx, p.account, rep, sig)
    return job.id


def _events(ctx: Context) -> list[dict[str, object]]:
    with ctx.store.read() as tx:
        size = tx.log_size()
    return [json.loads(e) for e in event_log.entries(ctx, 0, size)]


def test_every_step_of_a_job_is_an_event(ctx: Context, clock: FakeClock) -> None:
    job_id = _lifecycle(ctx, clock)
    kinds = [e["kind"] for e in _events(ctx)]
    for kind in (
        "account.created",
        "transfer.posted",  # the mint
        "node.registered",
        "offer.created",
        "job.submitted",
        "transfer.pending",  # escrow
        "contract.signed",
        "attempt.started",
        "attempt.ended",
    ):
        assert kind in kinds, kind
    ended = [e for e in _events(ctx) if e["kind"] == "attempt.ended"]
    assert ended[0]["job"] == job_id and ended[0]["reason"] == "completed"
    # escrow was held then settled: each hold appears pending, then posted
    holds = {e["transfer"] for e in _events(ctx) if e["kind"] == "transfer.pending"}
    settled = {e["transfer"] for e in _events(ctx) if e["kind"] == "transfer.posted"}
    assert holds and holds <= settled


def test_the_checkpoint_is_signed_and_matches_the_entries(ctx: Context, clock: FakeClock) -> None:
    _lifecycle(ctx, clock)
    made = event_log.integrate(ctx)
    assert made is not None
    size, note = made
    origin = ctx.rules.log_origin
    text = verify_note(note, Verifier(origin, raw_public_key(ctx.key)))
    cp = parse_checkpoint(text)
    assert (cp.origin, cp.size) == (origin, size)
    tree = merkle.MemoryTree()
    for data in event_log.entries(ctx, 0, size):
        tree.append(data.encode())
    assert tree.root() == cp.root  # recomputed by the client from the entries alone
    assert event_log.integrate(ctx) is None  # nothing new, no new checkpoint


def test_proofs_verify_against_signed_checkpoints(ctx: Context, clock: FakeClock) -> None:
    b.account(ctx, "early", "consumer", credits=1)
    old_size, old_note = event_log.checkpoint(ctx)
    _lifecycle(ctx, clock)
    made = event_log.integrate(ctx)
    assert made is not None
    new_size, new_note = made
    old_root = parse_checkpoint(old_note.split("\n\n")[0] + "\n").root
    new_root = parse_checkpoint(new_note.split("\n\n")[0] + "\n").root
    proof = event_log.consistency_proof(ctx, old_size, new_size)
    assert merkle.verify_consistency(old_size, new_size, proof, old_root, new_root)
    data = event_log.entries(ctx, 0, new_size)
    for index in range(new_size):
        path = event_log.inclusion_proof(ctx, index, new_size)
        leaf = merkle.leaf_hash(data[index].encode())
        assert merkle.verify_inclusion(leaf, index, new_size, path, new_root)


def test_objects_carry_the_index_of_the_event_that_created_them(
    ctx: Context, clock: FakeClock
) -> None:
    job_id = _lifecycle(ctx, clock)
    events = _events(ctx)
    with ctx.store.read() as tx:
        job = tx.get_job(job_id)
        assert job is not None
        [attempt] = tx.attempts_of(job_id)
        contract = tx.get_contract(attempt.contract_id)
        node = tx.get_node(attempt.node_id)
        offer = tx.get_offer(attempt.offer_id)
    assert contract is not None and node is not None and offer is not None
    for rec, kind, key in (
        (job, "job.submitted", "job"),
        (contract, "contract.signed", "contract"),
        (node, "node.registered", "node"),
        (offer, "offer.created", "offer"),
    ):
        assert rec.log_index is not None, kind
        event = events[rec.log_index]
        assert (event["kind"], event[key]) == (kind, rec.id)
