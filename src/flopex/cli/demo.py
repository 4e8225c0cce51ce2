"""``flopex demo``: the whole exchange on loopback as real processes — a server, four agents in
different regions and prices, real jobs with outputs, one agent killed mid-job (failover), and
a closing table of jobs, balances and the conservation check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flopex import protocol as p
from flopex.cli.audit import run_audit
from flopex.cli.output import err, out, report_error
from flopex.client.http import Client
from flopex.domain.units import UCR_PER_CREDIT, format_credits
from flopex.errors import FlopexError, Unavailable

LEASE_TTL_S = 4
START_TIMEOUT_S = 30
JOBS_TIMEOUT_S = 150


@dataclass(frozen=True)
class Site:
    name: str
    region: str
    price: str  # credits per vCPU-hour


SITES = (
    Site("kyushu", "jp-kyushu", "0.8"),
    Site("tokyo", "jp-tokyo", "1.2"),
    Site("hokkaido", "jp-hokkaido", "0.9"),
    Site("uswest", "us-west", "1.0"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _flopex(*args: str) -> list[str]:
    return [sys.executable, "-m", "flopex", *args]


def _wait_health(c: Client, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable("the demo server exited during start")
        try:
            c.health()
            return
        except Unavailable:
            time.sleep(0.2)
    raise Unavailable("the demo server did not start in time")


def _job_spec(i: int) -> dict[str, Any]:
    """Real work: hash chains and prime counts whose results land in $FLOPEX_OUTPUT_DIR."""
    n = 20_000 + 5_000 * i
    script = (
        "import hashlib, os, sys\n"
        f"n = {n}\n"
        "primes = [k for k in range(2, n) if all(k % d for d in range(2, int(k ** 0.5) + 1))]\n"
        "h = b'flopex'\n"
        "for _ in range(100000):\n"
        "    h = hashlib.sha256(h).digest()\n"
        "out = os.environ['FLOPEX_OUTPUT_DIR']\n"
        "text = f'{len(primes)} primes below {n}; chain {h.hex()}\\n'\n"
        "open(os.path.join(out, 'result.txt'), 'w').write(text)\n"
        "print(f'{len(primes)} primes below {n}')\n"
    )
    spec: dict[str, Any] = {
        "name": f"primes-{i}",
        "resources": {"cpus": 1},
        "envs": {"JOB_INDEX": str(i)},
        "run": f"python3 - <<'EOF'\n{script}EOF\n",
        "flopex": {"max_price_per_hour": 2, "estimated_hours": 0.05},
    }
    if i == 0:
        # The failover job: pinned to the cheapest region, slow enough to be killed mid-run.
        spec["name"] = "failover-demo"
        spec["run"] = "echo started on $(hostname); sleep 6; " + spec["run"]
        spec["resources"] = {"cpus": 1}
        spec["flopex"]["data_residency"] = ["jp-kyushu", "jp-tokyo", "jp-hokkaido"]
    if i == 1:
        spec["resources"]["region"] = "us-west"
    return spec


class Demo:
    """The process tree of one demo run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.env = os.environ | {
            "FLOPEX_LEASE_TTL_S": str(LEASE_TTL_S),
            "FLOPEX_HEARTBEAT_INTERVAL_S": "1",
            "FLOPEX_CLAIM_TTL_S": "10",
            "FLOPEX_REAPER_INTERVAL_S": "0.5",
            "FLOPEX_DATABASE_URL": "",
        }
        self.env.pop("FLOPEX_TOKEN", None)
        self.env.pop("FLOPEX_SERVER", None)

    def start_server(self) -> Client:
        log = (self.root / "server.log").open("wb")
        self.server = subprocess.Popen(
            _flopex("server", "--port", str(self.port), "--data-dir", str(self.root / "server")),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        probe = Client(self.url, None)
        _wait_health(probe, self.server)
        probe.close()
        token = (self.root / "server" / "admin.token").read_text().strip()
        return Client(self.url, token)

    def start_agent(self, site: Site, token: str) -> None:
        log = (self.root / f"agent-{site.name}.log").open("wb")
        self.agents[site.region] = subprocess.Popen(
            _flopex(
                "agent",
                "--server",
                self.url,
                "--token",
                token,
                "--region",
                site.region,
                "--price-per-hour",
                site.price,
                "--cpus",
                "2",
                "--memory",
                "2",
                "--claim-wait",
                "5",
                "--drain-timeout",
                "10",
                "--data-dir",
                str(self.root / f"agent-{site.name}"),
            ),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.agents.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()


def _wait_offers(admin: Client, count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(1 for o in admin.offers().offers if o.node_online) >= count:
            return
        time.sleep(0.2)
    raise Unavailable(f"fewer than {count} agents came online")


def _wait_running(c: Client, job_id: str) -> p.Job:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        job = c.job(job_id)
        if job.state == "running":
            return job
        time.sleep(0.1)
    raise Unavailable(f"job {job_id} did not start")


def _wait_settled(c: Client, ids: list[str]) -> list[p.Job]:
    deadline = time.monotonic() + JOBS_TIMEOUT_S
    while time.monotonic() < deadline:
        jobs = [c.job(i) for i in ids]
        if all(j.settled_at for j in jobs):
            return jobs
        time.sleep(0.5)
    raise Unavailable("jobs did not finish in time")


def _scenario(demo: Demo, job_count: int) -> bool:
    admin = demo.start_server()
    err.print(f"server up at {demo.url} (data in {demo.root})")
    providers: dict[str, Client] = {}
    for site in SITES:
        made = admin.create_account(f"provider-{site.name}", ["provider"])
        assert made.token is not None
        providers[site.region] = Client(demo.url, made.token)
        demo.start_agent(site, made.token)
    alice_made = admin.create_account("alice", ["consumer"])
    assert alice_made.token is not None
    minted = 100 * UCR_PER_CREDIT
    admin.mint("alice", minted)
    alice = Client(demo.url, alice_made.token)
    _wait_offers(admin, len(SITES))
    err.print(f"{len(SITES)} agents online; submitting {job_count} jobs")

    first = alice.submit(_job_spec(0))
    running = _wait_running(alice, first.id)
    victim = demo.agents[running.region or ""]
    rest = [alice.submit(_job_spec(i)).id for i in range(1, job_count)]
    time.sleep(1.0)
    err.print(f"killing the agent in {running.region} (kill -9) while it runs {first.id}")
    victim.kill()
    jobs = _wait_settled(alice, [first.id, *rest])
    ok = _report(admin, alice, providers, jobs, minted)
    return _audit(admin, demo.root) and ok


def _audit(admin: Client, root: Path) -> bool:
    """End as an auditor would: verify the signed log and replay it against the ledger."""
    admin.log_checkpoint(now=True)
    try:
        summary = run_audit(admin, None, root / "audit.json")
    except FlopexError as exc:
        report_error(exc)
        return False
    out.print(
        f"audit OK: checkpoint {summary['origin']} size {summary['size']} root {summary['root']}; "
        f"{summary['ledger_accounts_compared']} ledger accounts, "
        f"{summary['jobs_compared']} jobs and {summary['contracts_verified']} signed contracts "
        "match the replayed log (billing checked against the nodes' signed reports)"
    )
    return True


def _report(
    admin: Client, alice: Client, providers: dict[str, Client], jobs: list[p.Job], minted: int
) -> bool:
    table = Table(title="jobs (ids shortened)")
    for col in ("job", "node", "region", "attempts", "cost", "output sha256"):
        table.add_column(col, no_wrap=True)
    for j in jobs:
        outs = alice.outputs(j.id).outputs
        lost = [f"{a.region} {a.reason.value}" for a in j.attempts[:-1] if a.reason]
        table.add_row(
            "…" + j.id[-6:],
            "…" + (j.node_id or "")[-6:],
            j.region or "",
            str(len(j.attempts)) + (f" ({'; '.join(lost)})" if lost else ""),
            format_credits(j.cost_ucr + j.fee_ucr),
            outs[0].sha256[:12] if outs else "-",
        )
    # A terminal sets its own width; a log or a pipe gets every column in full.
    (out if out.is_terminal else Console(width=120, soft_wrap=True)).print(table)
    balances = Table(title="balances (credits)")
    for col in ("account", "available", "held", "earnings"):
        balances.add_column(col)
    me = alice.me()
    rows = [me] + [c.me() for c in providers.values()]
    for b in rows:
        balances.add_row(
            b.account.name,
            format_credits(b.available_ucr),
            format_credits(b.held_ucr),
            format_credits(b.earnings_ucr),
        )
    ledger = admin.ledger()
    balances.add_row("platform fees", "", "", format_credits(ledger.fees_ucr))
    out.print(balances)
    held = sum(b.held_ucr for b in rows)
    total = me.available_ucr + held + sum(b.earnings_ucr for b in rows) + ledger.fees_ucr
    ok_money = ledger.sum_ucr == 0 and ledger.pending_ucr == 0 and total == minted and held == 0
    ok_jobs = all(j.state == "succeeded" for j in jobs)
    failover = any(len(j.attempts) > 1 for j in jobs)
    out.print(
        f"credits conserved: minted {format_credits(minted)}"
        f" = consumer {format_credits(me.available_ucr)}"
        f" + providers {format_credits(sum(b.earnings_ucr for b in rows))}"
        f" + fees {format_credits(ledger.fees_ucr)}; ledger sums to {ledger.sum_ucr}: "
        + ("[green]OK[/]" if ok_money else "[red]MISMATCH[/]")
    )
    out.print(
        f"jobs succeeded: {sum(j.state == 'succeeded' for j in jobs)}/{len(jobs)}; "
        f"failover after kill -9: {'yes' if failover else 'no'}"
    )
    return ok_money and ok_jobs and failover


def run_demo(*, keep: bool, job_count: int) -> int:
    """Run the demo; 0 when every job succeeded, failover happened and money is conserved."""
    root = Path(tempfile.mkdtemp(prefix="flopex-demo-"))
    demo = Demo(root)
    started = time.monotonic()
    kept = False
    try:
        ok = _scenario(demo, max(job_count, 2))
        err.print(f"demo finished in {time.monotonic() - started:.0f}s; logs in {root}")
        if keep:
            for proc in demo.agents.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            err.print(
                f"--keep: server still running at {demo.url}; "
                f"admin token in {root}/server/admin.token"
            )
            kept = True
        return 0 if ok else 1
    except FlopexError as exc:
        report_error(exc)
        err.print(f"logs are in {root}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if not kept:  # also on a closed pipe or any crash: never leave processes behind
            demo.stop()
