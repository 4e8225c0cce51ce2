"""Tamper-evident log throughput: appends, integration, proofs, audit replay, beside baselines.

Measured on the real store (SQLite file in WAL mode, and PostgreSQL when reachable), through the
service layer, in one process:

* ``append_events_per_s``: events appended with :func:`flopex.service.log.append_signed` in
  batched transactions (``--batch`` per commit), each signed by its actor's Ed25519 key and
  verified on the server before it is appended, from ``--writers`` concurrent callers (one
  verifies while another commits, as concurrent requests do); ``append_one_writer_events_per_s``
  is the same from one caller, and ``append_unsigned_events_per_s`` appends without signatures
  (:func:`record`, one event at a time, as the use cases do) — the baselines;
* ``integrate_events_per_s``: new events hashed into the RFC 9162 tree (stored complete-subtree
  hashes) plus one signed checkpoint, against ``naive_root_events_per_s``: the root recomputed
  from every leaf, the baseline a tree without stored nodes would pay per checkpoint;
* ``checkpoint_latency_ms``: one integration round after a batch (the most an event waits for a
  checkpoint beyond the round interval);
* ``inclusion_proofs_per_s``: proofs served from the store;
* ``audit_events_per_s``: what ``flopex audit`` does per event (parse, hash into its own tree,
  replay with the exchange's rules) over the log of real job lifecycles run through the service
  layer (about one event in nine carries a node signature to check);
  ``audit_signed_events_per_s`` over the benchmark's events, every one signature-checked.

    python benchmarks/log_throughput.py [--events 20000] [--batch 500]

Writes benchmarks/results/log_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import OperationalError
from tests import builders as b
from tests.conftest import FakeClock, make_context
from tests.pgschema import pg_schema

from flopex.cli.audit_replay import replay_events
from flopex.domain import merkle
from flopex.domain.replay import Replay
from flopex.domain.signing import public_key_b64, sign
from flopex.service import attempts, jobs
from flopex.service import log as event_log
from flopex.service.context import Context

RESULTS = Path(__file__).parent / "results"


def _facts(i: int, node: str) -> dict[str, Any]:
    """A node's metered-usage report, the kind of event actors sign."""
    return {
        "node": node,
        "attempt": f"att_{i:026d}",
        "lease_epoch": 1,
        "duration_ms": 1000 + i,
        "exit_code": 0,
        "outputs_commitment": f"{i:064x}",
    }


def _signed(events: int) -> list[event_log.SignedEvent]:
    keys = [Ed25519PrivateKey.generate() for _ in range(8)]  # eight nodes
    out = []
    for i in range(events):
        key = keys[i % len(keys)]
        signer = public_key_b64(key)
        draft = event_log.SignedEvent("usage.reported", _facts(i, f"node{i % 8}"), signer, "")
        out.append(
            event_log.SignedEvent(draft.kind, draft.facts, signer, sign(key, draft.payload()))
        )
    return out


def _append(ctx: Context, events: list[event_log.SignedEvent], batch: int, writers: int) -> float:
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(lambda b: event_log.append_signed(ctx, b), batches))
    return len(events) / (time.perf_counter() - started)


def _append_unsigned(ctx: Context, events: int, batch: int) -> float:
    started = time.perf_counter()
    for first in range(0, events, batch):
        with ctx.store.write() as tx:
            for i in range(first, min(events, first + batch)):
                event_log.record(ctx, tx, "usage.reported", **_facts(i, "node0"))
    return events / (time.perf_counter() - started)


def _lifecycles(ctx: Context, clock: FakeClock, count: int) -> None:
    """Real job lifecycles through the service layer: what a live exchange's log holds."""
    p = b.provider(ctx, "p1", cpus=64)
    alice = b.account(ctx, "alice", "consumer", credits=1_000_000)
    for _ in range(count):
        jobs.submit(ctx, alice, b.spec(), workdir_sha256=None, idem_key=None)
        a = b.claim_one(ctx, p)
        clock.advance(1)
        rep, sig = b.report(p, a.attempt, duration_ms=1_000)
        attempts.complete(ctx, p.account, rep, sig)


def _audit_rate(data: list[bytes]) -> float:
    """What ``flopex audit`` does with downloaded events: hash them into its own tree, then
    replay them (signatures checked on a thread pool), then the money invariants."""
    started = time.perf_counter()
    tree, replay = merkle.MemoryTree(), Replay()
    for d in data:
        tree.append(d)
    replay_events(replay, 0, [d.decode() for d in data])
    replay.check_invariants()
    return len(data) / (time.perf_counter() - started)


def _naive_root(leaves: list[bytes]) -> bytes:
    level = [merkle.leaf_hash(x) for x in leaves]
    if not level:
        return merkle.EMPTY_ROOT

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return level[lo]
        k = merkle.split_point(hi - lo)
        return merkle.node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, len(level))


def _log_size(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return tx.log_size()


def _all_entries(ctx: Context, size: int) -> list[str]:
    out: list[str] = []
    while len(out) < size:
        out += event_log.entries(ctx, len(out), size)
    return out


def run(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    events, batch = args.events, args.batch
    root = Path(tempfile.mkdtemp(prefix=f"flopex-logbench-{name}-"))
    ctx = make_context(url, root / "blobs", FakeClock())
    signed = _signed(events + 2 * batch)
    one_writer_rate = _append(ctx, signed[events : events + batch], batch, 1)
    append_rate = _append(ctx, signed[:events], batch, args.writers)
    unsigned_rate = _append_unsigned(ctx, min(events, 5_000), batch)

    started = time.perf_counter()
    made = event_log.integrate(ctx)
    integrate_s = time.perf_counter() - started
    assert made is not None and made[0] >= events

    data = [e.encode() for e in _all_entries(ctx, made[0])]
    started = time.perf_counter()
    naive = _naive_root(data)
    naive_s = time.perf_counter() - started
    tree = merkle.MemoryTree()
    for d in data:
        tree.append(d)
    assert naive == tree.root()

    # a further batch, then one round: how long an event waits beyond the round interval
    _append(ctx, signed[events + batch :], batch, 1)
    started = time.perf_counter()
    event_log.integrate(ctx)
    latency_ms = (time.perf_counter() - started) * 1000

    size = len(data) + batch
    rng = random.Random(7)
    count = 2000
    started = time.perf_counter()
    for _ in range(count):
        event_log.inclusion_proof(ctx, rng.randrange(size), size)
    proofs_rate = count / (time.perf_counter() - started)

    audit_signed_rate = _audit_rate(data)
    ctx.store.db.dispose()  # type: ignore[attr-defined]
    return {
        "database": name,
        "events": len(data),
        "batch": batch,
        "writers": args.writers,
        "append_events_per_s": round(append_rate),
        "append_one_writer_events_per_s": round(one_writer_rate),
        "append_unsigned_events_per_s": round(unsigned_rate),
        "integrate_events_per_s": round(len(data) / integrate_s),
        "naive_root_events_per_s": round(len(data) / naive_s),
        "checkpoint_latency_ms": round(latency_ms, 1),
        "inclusion_proofs_per_s": round(proofs_rate),
        "audit_signed_events_per_s": round(audit_signed_rate),
    }


def lifecycle_audit(lifecycles: int) -> dict[str, Any]:
    """The audit's replay rate over the log of real lifecycles (client-side: any database)."""
    root = Path(tempfile.mkdtemp(prefix="flopex-logbench-life-"))
    clock = FakeClock()
    ctx = make_context(f"sqlite:///{root / 'life.db'}", root / "blobs", clock)
    _lifecycles(ctx, clock, lifecycles)
    data = [e.encode() for e in _all_entries(ctx, _log_size(ctx))]
    ctx.store.db.dispose()  # type: ignore[attr-defined]
    rates = sorted(_audit_rate(data) for _ in range(7))  # short runs: the median of seven
    return {
        "lifecycles": lifecycles,
        "events": len(data),
        "signed_events": sum(b'"usage_sig"' in d for d in data),
        "audit_events_per_s": round(rates[3]),
        "audit_events_per_s_min_max": [round(rates[0]), round(rates[-1])],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--lifecycles", type=int, default=2_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flopex-logbench-"))
    audit = lifecycle_audit(args.lifecycles)
    print(json.dumps({"audit_of_lifecycles": audit}), flush=True)
    results = [run("sqlite", f"sqlite:///{tmp / 'log.db'}", args)]
    print(json.dumps(results[-1]), flush=True)
    try:
        with pg_schema("flopex_logbench") as url:
            results.append(run("postgres", url, args))
            print(json.dumps(results[-1]), flush=True)
    except OperationalError as exc:  # PostgreSQL is optional for this benchmark
        print(f"postgres skipped: {exc.orig}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "benchmark": "log_throughput",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(args),
        "audit_of_lifecycles": audit,
        "results": results,
    }
    (RESULTS / "log_throughput.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
