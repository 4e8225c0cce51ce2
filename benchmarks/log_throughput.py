"""Tamper-evident log throughput: appends, integration, proofs, audit replay, beside baselines.

Measured on the real store (SQLite file in WAL mode, and PostgreSQL when reachable), through the
service layer, in one process:

* ``append_events_per_s``: events appended in batched transactions (``--batch`` per commit),
  each event signed by its actor's Ed25519 key and verified before it is appended, as a node's
  report is;
* ``integrate_events_per_s``: new events hashed into the RFC 9162 tree (stored complete-subtree
  hashes) plus one signed checkpoint, against ``naive_root_events_per_s``: the root recomputed
  from every leaf, the baseline a tree without stored nodes would pay per checkpoint;
* ``checkpoint_latency_ms``: one integration round after a batch (the most an event waits for a
  checkpoint beyond the round interval);
* ``inclusion_proofs_per_s``: proofs served from the store;
* ``audit_events_per_s``: what ``flopex audit`` does per event (parse, hash into its own tree,
  replay with the ledger rules).

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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import OperationalError
from tests.conftest import FakeClock, make_context
from tests.pgschema import pg_schema

from flopex.domain import merkle
from flopex.domain.replay import Replay
from flopex.domain.signing import canonical_json, sign_bytes, verify
from flopex.service import log as event_log
from flopex.service.context import Context

RESULTS = Path(__file__).parent / "results"


def _event(i: int) -> dict[str, Any]:
    return {
        "transfer": f"tr{i}",
        "debit": "platform:equity",
        "credit": f"acc{i % 97}:available",
        "amount_ucr": 1000 + i,
        "posted_ucr": 1000 + i,
        "job": None,
    }


def _append(ctx: Context, events: int, batch: int) -> float:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    signed = []
    for i in range(events):
        body = canonical_json(_event(i))
        signed.append((_event(i), sign_bytes(key, body)))
    started = time.perf_counter()
    for first in range(0, events, batch):
        with ctx.store.write() as tx:
            for facts, signature in signed[first : first + batch]:
                if not verify(public, facts, signature):
                    raise SystemExit("signature did not verify")
                event_log.record(ctx, tx, "transfer.posted", **facts)
    return events / (time.perf_counter() - started)


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


def _all_entries(ctx: Context, size: int) -> list[str]:
    out: list[str] = []
    while len(out) < size:
        out += event_log.entries(ctx, len(out), size)
    return out


def run(name: str, url: str, events: int, batch: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"flopex-logbench-{name}-"))
    ctx = make_context(url, root / "blobs", FakeClock())
    append_rate = _append(ctx, events, batch)

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
    _append(ctx, batch, batch)
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

    started = time.perf_counter()
    audit_tree, replay = merkle.MemoryTree(), Replay()
    for i, d in enumerate(data):
        audit_tree.append(d)
        replay.apply(i, json.loads(d))
    audit_rate = len(data) / (time.perf_counter() - started)
    ctx.store.db.dispose()  # type: ignore[attr-defined]
    return {
        "database": name,
        "events": len(data),
        "batch": batch,
        "append_events_per_s": round(append_rate),
        "integrate_events_per_s": round(len(data) / integrate_s),
        "naive_root_events_per_s": round(len(data) / naive_s),
        "checkpoint_latency_ms": round(latency_ms, 1),
        "inclusion_proofs_per_s": round(proofs_rate),
        "audit_events_per_s": round(audit_rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flopex-logbench-"))
    results = [run("sqlite", f"sqlite:///{tmp / 'log.db'}", args.events, args.batch)]
    print(json.dumps(results[-1]), flush=True)
    try:
        with pg_schema("flopex_logbench") as url:
            results.append(run("postgres", url, args.events, args.batch))
            print(json.dumps(results[-1]), flush=True)
    except OperationalError as exc:  # PostgreSQL is optional for this benchmark
        print(f"postgres skipped: {exc.orig}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "benchmark": "log_throughput",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(args),
        "results": results,
    }
    (RESULTS / "log_throughput.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
