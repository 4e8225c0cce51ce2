"""``flopex audit`` against a real server process, honest and tampered with."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.client.http import Client
from flopex.domain.note import ALG_COSIGNATURE_V1, verifier_key
from flopex.errors import Forbidden, Unauthorized
from tests.e2e.test_cli import assert_clean_error, flopex
from tests.integration.procs import ServerProc, running_server, start_agent, wait_for

CREDIT = 1_000_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    with running_server(tmp_path) as s:
        yield s


def _run_jobs(server: ServerProc, count: int = 2, consumer: str = "alice") -> Client:
    made = server.admin.create_account(consumer, ["consumer"])
    assert made.token
    server.admin.mint(consumer, 10 * CREDIT)
    c = server.client(made.token)
    agent = start_agent(
        server, server.admin.create_account(f"p-{consumer}", ["provider"]).token or "", consumer
    )
    try:
        ids = [
            c.submit({"name": "a", "resources": {"cpus": 1}, "run": "echo hi"}).id
            for _ in range(count)
        ]
        wait_for(lambda: all(c.job(i).settled_at for i in ids), 40)
    finally:
        agent.terminate()
        agent.wait(10)
    server.admin.log_checkpoint(now=True)
    return c


def _audit(
    server: ServerProc, state: Path, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``flopex audit`` as a subprocess, with the admin's token unless another is given."""
    return flopex(
        "audit", "--state", str(state), token=token or server.admin_token, server=server,
        cwd=state.parent,
    )  # fmt: skip


def _db(server: ServerProc) -> Path:
    return server.root / "server" / "flopex.db"


def test_an_honest_exchange_passes_and_the_audit_resumes(server: ServerProc) -> None:
    _run_jobs(server)
    state = server.root / "audit.json"
    first = _audit(server, state)
    assert first.returncode == 0, first.stderr
    assert "audit OK" in first.stdout and "accounts match" in first.stdout
    bob = _run_jobs(server, consumer="bob")
    again = _audit(server, state)
    assert again.returncode == 0, again.stderr
    assert "new events" in again.stdout
    # a consumer audits too: its own jobs are compared with the replayed log
    mine = _audit(server, server.root / "bob.json", bob.token)
    assert mine.returncode == 0, mine.stderr
    assert "your 2 jobs match" in mine.stdout
    assert "ledger not compared" in mine.stderr


def test_an_amount_edited_in_the_database_is_caught(server: ServerProc) -> None:
    _run_jobs(server)
    with sqlite3.connect(_db(server)) as db:
        db.execute(
            "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
            "WHERE id LIKE '%:earnings' AND credits_posted > 0"
        )
    res = _audit(server, server.root / "audit.json")
    assert_clean_error(res, "audit.failed")
    assert "ledger account" in res.stderr and ":earnings" in res.stderr


def test_an_edited_or_deleted_event_is_caught(server: ServerProc) -> None:
    _run_jobs(server)
    with sqlite3.connect(_db(server)) as db:
        db.execute(
            "UPDATE log_entries SET data = replace(data, '\"amount_ucr\":', '\"amount_ucr\":1') "
            "WHERE idx = (SELECT min(idx) FROM log_entries WHERE data LIKE '%transfer.posted%')"
        )
    res = _audit(server, server.root / "audit.json")
    assert_clean_error(res, "audit.failed")
    assert "do not hash to the signed root" in res.stderr


def test_a_restored_backup_with_a_different_history_is_caught(server: ServerProc) -> None:
    _run_jobs(server)
    backup = server.root / "backup.db"
    with sqlite3.connect(_db(server)) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # a consistent snapshot, WAL included
    state = server.root / "audit.json"
    _run_jobs(server, consumer="bob")
    assert _audit(server, state).returncode == 0  # the auditor saw the longer history
    assert _witness(server, "w1.test").returncode == 0  # and so did a witness
    server.kill()
    for suffix in ("", "-wal", "-shm"):
        Path(str(_db(server)) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, _db(server))
    server.start_again()
    _run_jobs(server, consumer="carol")  # a different continuation of the old history
    res = _audit(server, state)
    assert_clean_error(res, "audit.failed")
    assert "rewritten or forked" in res.stderr or "shrank" in res.stderr
    refused = _witness(server, "w1.test")
    assert_clean_error(refused, "witness.refused")
    assert "rewritten or forked" in refused.stderr or "shrank" in refused.stderr


def _witness(server: ServerProc, name: str) -> subprocess.CompletedProcess[str]:
    key = server.root / f"{name}.key"
    return flopex(
        "witness", "--name", name, "--once", "--key-file", str(key),
        token=server.admin_token, server=server, cwd=server.root,
    )  # fmt: skip


def test_witnesses_cosign_and_the_audit_can_require_them(server: ServerProc) -> None:
    _run_jobs(server)
    done = _witness(server, "w1.test")
    assert done.returncode == 0, done.stderr
    w1 = done.stdout.split(" as ")[-1].strip()
    state = server.root / "audit.json"
    ok = flopex(
        "audit", "--state", str(state), "--witness-key", w1, "--min-witnesses", "1",
        token=server.admin_token, server=server, cwd=server.root,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "witnessed: 1" in ok.stdout
    stranger = verifier_key("w2.test", Ed25519PrivateKey.generate(), ALG_COSIGNATURE_V1)
    short = flopex(
        "audit", "--state", str(state), "--witness-key", w1, "--witness-key", stranger,
        "--min-witnesses", "2", token=server.admin_token, server=server, cwd=server.root,
    )  # fmt: skip
    assert_clean_error(short, "log.not_cosigned")


def test_a_job_state_edited_in_the_database_is_caught(server: ServerProc) -> None:
    alice = _run_jobs(server)
    with sqlite3.connect(_db(server)) as db:
        db.execute("UPDATE jobs SET state = 'failed' WHERE id = (SELECT min(id) FROM jobs)")
    res = _audit(server, server.root / "alice.json", alice.token)
    assert_clean_error(res, "audit.failed")
    assert "the server reports failed, the log's events give succeeded" in res.stderr


def test_a_deleted_event_is_caught(server: ServerProc) -> None:
    _run_jobs(server)
    state = server.root / "audit.json"
    with sqlite3.connect(_db(server)) as db:  # drop one event and close the gap
        gone = db.execute(
            "SELECT min(idx) FROM log_entries WHERE data LIKE '%attempt.started%'"
        ).fetchone()[0]
        db.execute("DELETE FROM log_entries WHERE idx = ?", (gone,))
        db.execute("UPDATE log_entries SET idx = idx - 1 WHERE idx > ?", (gone,))
    res = _audit(server, state)
    assert_clean_error(res, "audit.failed")
    assert "do not hash to the signed root" in res.stderr or "no event at index" in res.stderr


def test_private_content_edited_in_the_database_is_caught(server: ServerProc) -> None:
    """What the log only commits to — a job's spec, its logs — and the contract whose hash it
    holds: each edited behind the exchange's back is caught by the audit of the party who can
    open it, naming the job or contract; put back, the audit passes again."""
    alice = _run_jobs(server, count=1)
    [job] = alice.jobs().jobs
    contract_id = job.attempts[0].contract_id
    edits = [
        ("UPDATE jobs SET spec = replace(spec, 'echo hi', 'echo ho')", "spec other than"),
        ("UPDATE job_logs SET data = 'forged\n'", "not the ones its node signed"),
        (
            "UPDATE contracts SET body = replace(body, '\"fee_bps\":500', '\"fee_bps\":5')",
            f"contract {contract_id}",
        ),
    ]
    for n, (edit, words) in enumerate(edits):
        table = edit.split()[1]
        with sqlite3.connect(_db(server)) as db:
            saved = db.execute(f"SELECT rowid, * FROM {table}").fetchall()
            db.execute(edit)
        res = _audit(server, server.root / f"alice-{n}.json", alice.token)
        assert_clean_error(res, "audit.failed")
        assert words in res.stderr, res.stderr
        assert job.id in res.stderr or contract_id in res.stderr
        with sqlite3.connect(_db(server)) as db:
            db.execute(f"DELETE FROM {table}")
            marks = ",".join("?" * len(saved[0]))
            db.executemany(
                f"INSERT INTO {table} (rowid, {_cols(db, table)}) VALUES ({marks})", saved
            )
    ok = _audit(server, server.root / "alice-ok.json", alice.token)
    assert ok.returncode == 0, ok.stderr
    assert "openings match" in ok.stdout and "1 attempts' logs" in ok.stdout
    assert "contracts: 1 signed contracts" in ok.stdout


def _cols(db: sqlite3.Connection, table: str) -> str:
    return ",".join(r[1] for r in db.execute(f"PRAGMA table_info({table})"))


def test_openings_are_the_partys_own_and_an_auditor_reads_every_account(
    server: ServerProc,
) -> None:
    alice = _run_jobs(server, count=1)
    bob = _run_jobs(server, count=1, consumer="bob")
    size = int(server.admin.log_checkpoint().splitlines()[1])
    made = server.admin.create_account("carol-auditor", ["auditor"])
    assert made.token
    carol = server.client(made.token)
    mine = {o.index for o in alice.log_openings(0, size).openings}
    bobs = {o.index for o in bob.log_openings(0, size).openings}
    every = {o.index for o in carol.log_openings(0, size).openings}
    assert mine and bobs and not mine & bobs  # nobody opens another's commitments
    assert mine | bobs <= every
    assert len(carol.jobs(all_accounts=True).jobs) == 2
    with pytest.raises(Forbidden):
        alice.jobs(all_accounts=True)
    with pytest.raises(Unauthorized):
        server.client(None).log_openings(0, size)
    res = _audit(server, server.root / "carol.json", made.token)
    assert res.returncode == 0, res.stderr
    assert "every account's 2 jobs match" in res.stdout
    assert "accounts match" in res.stdout  # an auditor compares the whole ledger too


def test_a_withheld_opening_or_a_wrong_log_index_is_caught(server: ServerProc) -> None:
    alice = _run_jobs(server, count=1)
    [job] = alice.jobs().jobs
    with sqlite3.connect(_db(server)) as db:
        db.execute("UPDATE jobs SET log_index = log_index + 1")
    res = _audit(server, server.root / "a1.json", alice.token)
    assert_clean_error(res, "audit.failed")
    assert f"job {job.id}: the server says event" in res.stderr
    with sqlite3.connect(_db(server)) as db:
        db.execute("UPDATE jobs SET log_index = log_index - 1")
        db.execute(
            "DELETE FROM log_openings WHERE fields LIKE '%\"spec\"%' AND account_id = ?",
            (alice.me().account.id,),
        )
    res = _audit(server, server.root / "a2.json", alice.token)
    assert_clean_error(res, "audit.failed")
    assert "withholds the opening of its spec" in res.stderr


def test_an_exchange_on_postgresql_with_two_workers_passes_the_audit(
    tmp_path: Path, own_pg_url: str
) -> None:
    """Openings, node-signed reports, contracts and logs verify the same over PostgreSQL, with
    two server processes writing (one sequences the log and signs checkpoints)."""
    with running_server(tmp_path, own_pg_url, workers=2) as pg:
        alice = _run_jobs(pg, count=3)
        mine = _audit(pg, tmp_path / "alice.json", alice.token)
        assert mine.returncode == 0, mine.stderr
        assert "your 3 jobs match" in mine.stdout and "3 attempts' logs" in mine.stdout
        everything = _audit(pg, tmp_path / "admin.json")
        assert everything.returncode == 0, everything.stderr
        assert "accounts match" in everything.stdout
