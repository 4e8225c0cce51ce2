"""The tamper-evident log: events appended with each change, integrated, signed and provable."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.domain import merkle
from flopex.domain.note import Verifier, parse_checkpoint, raw_public_key, verify_note
from flopex.domain.replay import Replay, ReplayError
from flopex.domain.signing import public_key_b64, sign
from flopex.errors import RequestInvalid
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
        (attempt, "contract.signed", "attempt"),
    ):
        assert rec.log_index is not None, kind
        event = events[rec.log_index]
        assert (event["kind"], event[key]) == (kind, rec.id)


def _signed_batch(count: int) -> tuple[list[event_log.SignedEvent], str]:
    key = Ed25519PrivateKey.generate()
    signer = public_key_b64(key)
    batch = []
    for i in range(count):
        facts = {"attempt": f"att{i}", "duration_ms": 1000 + i}
        payload = {"kind": "usage.reported", **facts}
        batch.append(event_log.SignedEvent("usage.reported", facts, signer, sign(key, payload)))
    return batch, signer


def test_a_signed_batch_is_appended_whole_or_not_at_all(ctx: Context) -> None:
    with ctx.store.read() as tx:
        before = tx.log_size()
    batch, signer = _signed_batch(20)
    forged = list(batch)
    forged[7] = replace(batch[7], facts=batch[7].facts | {"duration_ms": 1})
    with pytest.raises(RequestInvalid) as info:
        event_log.append_signed(ctx, forged)
    assert info.value.code == "log.bad_signature" and "event 7" in info.value.message
    with ctx.store.read() as tx:
        assert tx.log_size() == before  # nothing of the refused batch
    first = event_log.append_signed(ctx, batch)
    assert first == before
    leaves = [json.loads(e) for e in event_log.entries(ctx, first, first + 20)]
    assert all(e["signer"] == signer and e["sig"] for e in leaves)
    r = Replay()
    for i, e in enumerate(_events(ctx)):
        r.apply(i, e)  # every actor signature verifies in the replay
    tampered = leaves[3] | {"duration_ms": 5}
    with pytest.raises(ReplayError, match="signature"):
        Replay().apply(first + 3, tampered)


def test_proofs_follow_checkpoints_another_process_signed(ctx: Context, clock: FakeClock) -> None:
    b.account(ctx, "early", "consumer", credits=1)
    size, _ = event_log.checkpoint(ctx)
    event_log.inclusion_proof(ctx, 0, size)  # this process now remembers the signed size
    other = replace(ctx, log_nodes={}, log_signed_size=0)  # a second server process
    _lifecycle(other, clock)
    made = event_log.integrate(other)
    assert made is not None
    new_size, note = made
    root = parse_checkpoint(note.split("\n\n")[0] + "\n").root
    data = event_log.entries(ctx, 0, new_size)
    path = event_log.inclusion_proof(ctx, new_size - 1, new_size)  # beyond what it remembered
    leaf = merkle.leaf_hash(data[-1].encode())
    assert merkle.verify_inclusion(leaf, new_size - 1, new_size, path, root)
    with pytest.raises(RequestInvalid) as info:
        event_log.inclusion_proof(ctx, 0, new_size + 1)
    assert info.value.code == "log.out_of_range"
