"""Exchange throughput: full job lifecycles over HTTP on SQLite and PostgreSQL.

One lifecycle = submit (POST /v1/jobs: validate, escrow hold, signed contract) -> claim by an
agent (long-poll) -> signed completion (Ed25519 verified) -> settled. Agents report the
completions of what they claimed together in one request, as the agent's reporter does
(``POST /v1/attempts/completions``); ``--submit-batch N`` makes consumers submit N jobs per
request (``POST /v1/jobs/batch``, one transaction). Consumers and agents are
separate processes talking HTTP to a real ``flopex server`` process; agents complete trivial
jobs at once (no subprocess), so this measures the exchange, not bash.

Baseline in the same run: ``GET /v1/health`` requests/s from the same number of client
processes (a bare authenticated-less round trip through the same server), so the ratio
lifecycle/s : health/s is comparable across noisy machines.

    python benchmarks/exchange_throughput.py [--jobs 1000] [--consumers 2] [--agents 4]

Writes benchmarks/results/exchange_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.integration.procs import ServerProc
from tests.pgschema import pg_schema

from flopex import protocol as p
from flopex.client.http import Client
from flopex.domain.signing import public_key_b64, sign
from flopex.domain.usage import Outcome, UsageReport
from flopex.errors import FlopexError

RESULTS = Path(__file__).parent / "results"
TIMEOUT_S = 120
SPEC = {"name": "bench", "resources": {"cpus": 1}, "run": "true"}


def _submitter(url: str, token: str, count: int, threads: int, batch: int) -> None:
    """``count`` jobs, one per request, or ``batch`` per request (one transaction each)."""
    client = Client(url, token)

    def one(_: int) -> None:
        if batch > 1:
            client.submit_batch([SPEC] * batch)
        else:
            client.submit(SPEC)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count // batch)))


def _agent(url: str, token: str, stop_at: float, threads: int, done: Any) -> None:
    """A provider agent as the real one behaves: long-poll claims, heartbeats, signed reports."""
    client = Client(url, token)
    key = Ed25519PrivateKey.generate()
    node = client.register_node(
        p.NodeCreate(public_key=public_key_b64(key), hardware={}, region="jp-tokyo", simulated=True)
    )
    client.create_offer(
        p.OfferCreate(node_id=node.id, cpus=64, memory_bytes=0, price_ucr_per_device_hour=1_000_000)
    )
    held: dict[str, int] = {}
    lock = threading.Lock()

    def heartbeats() -> None:
        while time.time() < stop_at:
            with lock:
                running = [p.RunningAttempt(attempt_id=a, lease_epoch=e) for a, e in held.items()]
            client.heartbeat(node.id, p.Heartbeat(running=running))
            time.sleep(1.0)

    def work(_: int) -> None:
        while time.time() < stop_at:
            reply = client.claim(node.id, 16, 1.0)
            with lock:
                held.update({a.attempt_id: a.lease_epoch for a in reply.assignments})
            bodies = []
            for a in reply.assignments:
                r = UsageReport(a.attempt_id, a.lease_epoch, node.id, 5, 0, Outcome.COMPLETED, ())
                wire = p.UsageReport.model_validate(r.wire())
                bodies.append(p.Complete(report=wire, signature=sign(key, r.payload())))
            if bodies:  # as the agent's reporter does: reports ending together, one request
                outcomes = client.complete_many(bodies)
                ok = sum(not isinstance(o, FlopexError) for o in outcomes)  # fenced: not done
                with done.get_lock():
                    done.value += ok
            with lock:
                for a in reply.assignments:
                    held.pop(a.attempt_id, None)

    threading.Thread(target=heartbeats, daemon=True).start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def _health(url: str, seconds: float, threads: int, out: Any) -> None:
    client = Client(url, None)
    stop = time.monotonic() + seconds
    counts = []

    def loop(_: int) -> int:
        n = 0
        while time.monotonic() < stop:
            client.health()
            n += 1
        return n

    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(loop, range(threads)))
    out.put(sum(counts))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_one(
    database: str,
    url: str | None,
    jobs: int,
    consumers: int,
    agents: int,
    workers: int,
    batch: int = 1,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"flopex-bench-{database}-"))
    server = ServerProc(root, url, workers=workers)
    try:
        admin = server.admin
        alice = admin.create_account("alice", ["consumer"]).token
        admin.mint("alice", 10**15)
        provider_tokens = [admin.create_account(f"p{i}", ["provider"]).token for i in range(agents)]
        # baseline: health round trips with the same client shape
        q: mp.Queue[int] = mp.Queue()
        hs = [mp.Process(target=_health, args=(server.url, 3.0, 8, q)) for _ in range(consumers)]
        for h in hs:
            h.start()
        for h in hs:
            h.join()
        health_rps = sum(q.get() for _ in hs) / 3.0
        stop_at = time.time() + TIMEOUT_S + 30
        done = mp.Value("i", 0)
        ags = [
            mp.Process(target=_agent, args=(server.url, t, stop_at, 4, done))
            for t in provider_tokens
        ]
        for a in ags:
            a.start()
        time.sleep(2.0)
        started = time.monotonic()
        subs = [
            mp.Process(target=_submitter, args=(server.url, alice, jobs // consumers, 8, batch))
            for _ in range(consumers)
        ]
        for s in subs:
            s.start()
        total = (jobs // consumers // batch) * batch * consumers
        # The agents count their accepted completions: watching adds no load to the server.
        while done.value < total and time.monotonic() - started < TIMEOUT_S:
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        finished = done.value
        for s in subs:
            s.join()
        for a in ags:
            a.terminate()
        client = Client(server.url, alice)
        latencies = _latencies(client)
        return {
            "database": database,
            "server_workers": workers,
            "submit_batch": batch,
            "jobs": total,
            "succeeded": finished,
            "elapsed_s": round(elapsed, 3),
            "lifecycles_per_s": round(finished / elapsed, 1),
            "submit_to_running_ms_p50": round(_pct(latencies, 0.5), 1),
            "submit_to_running_ms_p99": round(_pct(latencies, 0.99), 1),
            "baseline_health_rps": round(health_rps, 1),
            "ratio_lifecycles_to_health": round(finished / elapsed / health_rps, 4),
        }
    finally:
        server.stop()


def _latencies(client: Client) -> list[float]:
    out, cursor = [], None
    while True:
        page = client.jobs(limit=500, cursor=cursor)
        for j in page.jobs:
            if j.attempts and j.attempts[0].claimed_at:
                created = datetime.fromisoformat(j.created_at.replace("Z", "+00:00"))
                claimed = datetime.fromisoformat(j.attempts[0].claimed_at.replace("Z", "+00:00"))
                out.append((claimed - created).total_seconds() * 1000)
        if not page.next_cursor:
            return out
        cursor = page.next_cursor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="server processes to compare")
    parser.add_argument(
        "--submit-batch", type=int, default=1, help="jobs per submit request (POST /v1/jobs/batch)"
    )
    args = parser.parse_args()
    results = []
    for database in args.databases.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            if database == "sqlite":
                results.append(
                    run_one(
                        "sqlite",
                        None,
                        args.jobs,
                        args.consumers,
                        args.agents,
                        workers,
                        args.submit_batch,
                    )
                )
            else:
                with pg_schema("flopex_bench") as url:
                    results.append(
                        run_one(
                            "postgres",
                            url,
                            args.jobs,
                            args.consumers,
                            args.agents,
                            workers,
                            args.submit_batch,
                        )
                    )
            print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "benchmark": "exchange_throughput",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": vars(args),
        "results": results,
        "median_lifecycles_per_s": statistics.median(r["lifecycles_per_s"] for r in results),
    }
    (RESULTS / "exchange_throughput.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
