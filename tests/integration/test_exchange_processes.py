"""A real server process and real agent processes over loopback."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flopex.client.http import Client
from flopex.errors import AttemptFenced, InvalidInput, NotFound, TooLarge, Unauthorized
from tests.integration.procs import ServerProc, running_server, start_agent, wait_for

CREDIT = 1_000_000


def _job(run: str, **flopex: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "it", "resources": {"cpus": 1}, "run": run}
    if flopex:
        spec["flopex"] = flopex
    return spec


def _consumer(server: ServerProc, name: str = "alice", credits: int = 100) -> Client:
    made = server.admin.create_account(name, ["consumer"])
    assert made.token
    server.admin.mint(name, credits * CREDIT)
    return server.client(made.token)


def _provider_token(server: ServerProc, name: str) -> str:
    made = server.admin.create_account(name, ["provider"])
    assert made.token
    return made.token


def _settled(c: Client, job_id: str, timeout_s: float = 40) -> Any:
    wait_for(lambda: c.job(job_id).settled_at is not None, timeout_s)
    return c.job(job_id)


def _ledger_ok(server: ServerProc) -> None:
    ledger = server.admin.ledger()
    assert ledger.sum_ucr == 0
    assert ledger.pending_ucr == 0
    assert ledger.held_ucr == 0


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with running_server(tmp_path) as s:
        yield s


def test_job_runs_on_an_agent_outputs_and_settles(server: ServerProc) -> None:
    agent = start_agent(server, _provider_token(server, "prov"), "a")
    try:
        alice = _consumer(server)
        wait_for(lambda: any(o.node_online for o in alice.offers().offers))
        job = alice.submit(
            _job('echo "hello $NAME"; echo 42 > "$FLOPEX_OUTPUT_DIR/answer.txt"')
            | {"envs": {"NAME": "flopex"}}
        )
        done = _settled(alice, job.id)
        assert done.state == "succeeded", done
        logs = "".join(c.data for c in alice.logs(job.id).chunks)
        assert "hello flopex" in logs
        [out] = alice.outputs(job.id).outputs
        assert out.path == "answer.txt"
        assert alice.get_blob(out.sha256) == b"42\n"
        contract = alice.contract(done.attempts[0].contract_id)
        assert contract.body["job_id"] == job.id
        assert contract.exchange_public_key == server.admin.health().exchange_public_key
        me = alice.me()
        assert me.available_ucr == 100 * CREDIT - done.cost_ucr - done.fee_ucr
        _ledger_ok(server)
    finally:
        agent.terminate()
        agent.wait(10)


def test_job_error_is_reported_with_exit_code(server: ServerProc) -> None:
    agent = start_agent(server, _provider_token(server, "prov"), "a")
    try:
        alice = _consumer(server)
        job = alice.submit(_job("echo failing >&2; exit 7"))
        done = _settled(alice, job.id)
        assert (done.state, done.reason) == ("failed", "job_error")
        assert done.attempts[0].exit_code == 7
        _ledger_ok(server)
    finally:
        agent.terminate()
        agent.wait(10)


def test_cancel_stops_a_running_job(server: ServerProc) -> None:
    agent = start_agent(server, _provider_token(server, "prov"), "a")
    try:
        alice = _consumer(server)
        job = alice.submit(_job("sleep 60"))
        wait_for(lambda: alice.job(job.id).state == "running")
        alice.cancel(job.id)
        done = _settled(alice, job.id, 20)
        assert (done.state, done.reason) == ("cancelled", "user_cancelled")
        assert done.attempts[0].billed_ms is not None and done.attempts[0].billed_ms < 20_000
        _ledger_ok(server)
    finally:
        agent.terminate()
        agent.wait(10)


def test_kill_9_agent_mid_job_reschedules_and_charges_once(server: ServerProc) -> None:
    a1 = start_agent(server, _provider_token(server, "p1"), "a1", region="jp-kyushu", price="1")
    alice = _consumer(server)
    wait_for(lambda: len([o for o in alice.offers().offers if o.node_online]) == 1)
    job = alice.submit(_job('sleep 3; echo done > "$FLOPEX_OUTPUT_DIR/r.txt"'))
    wait_for(lambda: alice.job(job.id).state == "running")
    a1.send_signal(signal.SIGKILL)
    a1.wait(5)
    a2 = start_agent(server, _provider_token(server, "p2"), "a2", region="jp-tokyo", price="2")
    try:
        done = _settled(alice, job.id, 60)
        assert done.state == "succeeded"
        assert [a.reason for a in done.attempts] == ["provider_lost", "completed"]
        assert done.attempts[0].cost_ucr == 0
        assert done.attempts[1].region == "jp-tokyo"
        assert done.cost_ucr == done.attempts[1].cost_ucr
        me = alice.me()
        assert me.available_ucr == 100 * CREDIT - done.cost_ucr - done.fee_ucr
        _ledger_ok(server)
    finally:
        a2.terminate()
        a2.wait(10)


def test_sigterm_drains_and_hands_back_running_work(server: ServerProc) -> None:
    agent = start_agent(server, _provider_token(server, "p1"), "a1", extra=("--drain-timeout", "1"))
    alice = _consumer(server)
    job = alice.submit(_job("sleep 30"))
    wait_for(lambda: alice.job(job.id).state == "running")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(20) == 0
    view = alice.job(job.id)
    assert view.attempts[0].reason == "provider_drained"
    assert view.attempts[0].cost_ucr == 0
    assert view.state in ("queued", "matched")
    alice.cancel(job.id)
    _ledger_ok(server)


def test_http_errors_have_codes(server: ServerProc) -> None:
    alice = _consumer(server)
    eve = _consumer(server, "eve")
    job = alice.submit(_job("true"))
    with pytest.raises(NotFound):
        eve.job(job.id)
    with pytest.raises(Unauthorized):
        server.client("wrong").me()
    with pytest.raises(Unauthorized):
        server.client(None).me()
    with pytest.raises(TooLarge):
        alice.submit(_job("echo " + "x" * (2 << 20)))
    prov = server.client(_provider_token(server, "p"))
    with pytest.raises(NotFound):
        prov.release("att_doesnotexist", 1)


def test_a_batch_over_http_is_all_or_nothing(server: ServerProc) -> None:
    alice = _consumer(server)
    with pytest.raises(InvalidInput) as info:
        alice.submit_batch([_job("true"), {"run": "true", "resourcez": {}}])
    assert "jobs[1]" in info.value.message and info.value.details["index"] == 1
    assert alice.jobs().jobs == []  # the good first job was not queued either
    made = alice.submit_batch([_job("true"), _job("true")])
    assert len(made.jobs) == 2 and {j.id for j in alice.jobs().jobs} == {j.id for j in made.jobs}


@pytest.mark.parametrize(
    ("database", "workers"), [("sqlite", 1), ("postgres", 2)], ids=["sqlite", "postgres-2-workers"]
)
def test_eight_agents_two_hundred_jobs_none_run_twice(
    database: str, workers: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("own_pg_url") if database == "postgres" else None
    with running_server(tmp_path, url, workers) as server:
        _many_agents_many_jobs(server, agents_count=8, count=200)


def _many_agents_many_jobs(server: ServerProc, *, agents_count: int, count: int) -> None:
    agents = [
        start_agent(server, _provider_token(server, f"p{i}"), f"a{i}", cpus=4)
        for i in range(agents_count)
    ]
    try:
        alice = _consumer(server, credits=1000)
        wait_for(lambda: len([o for o in alice.offers().offers if o.node_online]) == agents_count)
        ids = [
            j.id
            for j in alice.submit_batch([_job("echo $FLOPEX_JOB_ID") for _ in range(count)]).jobs
        ]
        wait_for(lambda: all(alice.job(i).settled_at for i in ids), 150, 0.5)
        done = [alice.job(i) for i in ids]
        assert all(j.state == "succeeded" for j in done)
        assert all(len(j.attempts) == 1 for j in done)
        for j in done:
            logs = "".join(c.data for c in alice.logs(j.id).chunks)
            assert logs.count(j.id) == 1  # ran exactly once
        _ledger_ok(server)
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)


def test_late_agent_completing_an_expired_lease_gets_409(server: ServerProc) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flopex import protocol as p
    from flopex.domain.signing import public_key_b64, sign
    from flopex.domain.usage import Outcome, UsageReport

    key = Ed25519PrivateKey.generate()
    prov = server.client(_provider_token(server, "hand"))
    node = prov.register_node(
        p.NodeCreate(public_key=public_key_b64(key), hardware={}, region="jp-tokyo", simulated=True)
    )
    prov.create_offer(
        p.OfferCreate(node_id=node.id, cpus=1, memory_bytes=0, price_ucr_per_device_hour=CREDIT)
    )
    alice = _consumer(server)
    job = alice.submit(_job("true"))
    [a] = prov.claim(node.id, 1, 2).assignments
    wait_for(lambda: alice.job(job.id).attempts[0].reason == "provider_lost", 15)
    report = UsageReport(a.attempt_id, a.lease_epoch, node.id, 1000, 0, Outcome.COMPLETED, ())
    wire = report.wire()
    with pytest.raises(AttemptFenced) as info:
        prov.complete(
            a.attempt_id,
            p.Complete(
                report=p.UsageReport.model_validate(wire), signature=sign(key, report.payload())
            ),
        )
    assert info.value.code == "attempt.fenced"
    _ledger_ok(server)


def test_two_server_workers_share_one_database(tmp_path: Path) -> None:
    with running_server(tmp_path, workers=2) as server:
        agent = start_agent(server, _provider_token(server, "prov"), "a")
        try:
            alice = _consumer(server)
            jobs = [alice.submit(_job(f'echo {i} > "$FLOPEX_OUTPUT_DIR/i.txt"')) for i in range(6)]
            done = [_settled(alice, j.id) for j in jobs]
            assert [d.state for d in done] == ["succeeded"] * 6
            assert all(len(d.attempts) == 1 for d in done)  # none ran twice
            _ledger_ok(server)
        finally:
            agent.terminate()
            agent.wait(10)


def test_a_killed_server_restarts_and_the_running_job_settles_once(server: ServerProc) -> None:
    agent = start_agent(server, _provider_token(server, "prov"), "a")
    try:
        alice = _consumer(server)
        job = alice.submit(_job('sleep 1; echo ok > "$FLOPEX_OUTPUT_DIR/r.txt"'))
        wait_for(lambda: alice.job(job.id).state == "running")
        server.kill()  # mid-job: the job ends while the server is down, its report must wait
        time.sleep(3.5)  # longer than the lease TTL (3 s here)
        server.start_again()
        done = _settled(alice, job.id, 60)
        assert done.state == "succeeded", done
        assert [a.reason for a in done.attempts] == ["completed"]
        [out] = alice.outputs(job.id).outputs
        assert alice.get_blob(out.sha256) == b"ok\n"
        _ledger_ok(server)
    finally:
        agent.terminate()
        agent.wait(10)


def test_the_log_over_http_verifies_end_to_end(server: ServerProc) -> None:
    from flopex.domain import merkle
    from flopex.domain.note import parse_checkpoint, parse_verifier_key, verify_note

    agent = start_agent(server, _provider_token(server, "prov"), "a")
    try:
        alice = _consumer(server)
        job = alice.submit(_job("echo hi"))
        _settled(alice, job.id)
    finally:
        agent.terminate()
        agent.wait(10)
    anyone = server.client(None)
    key = anyone.log_key()
    verifier = parse_verifier_key(key.verifier_key)
    assert key.public_key == server.admin.health().exchange_public_key
    note = server.admin.log_checkpoint(now=True)
    cp = parse_checkpoint(verify_note(note, verifier))
    assert cp.origin == key.origin and cp.size > 0
    created = alice.job(job.id).log_index  # the API points at the event that created the job
    assert created is not None and created < cp.size
    entries: list[str] = []
    while len(entries) < cp.size:
        entries += anyone.log_entries(len(entries), cp.size).entries
    tree = merkle.MemoryTree()
    for e in entries[: cp.size]:
        tree.append(e.encode())
    assert tree.root() == cp.root
    last = cp.size - 1
    path = anyone.log_inclusion(last, cp.size)
    assert merkle.verify_inclusion(
        merkle.leaf_hash(entries[last].encode()), last, cp.size, path, cp.root
    )
    event = json.loads(entries[created])
    assert (event["kind"], event["job"]) == ("job.submitted", job.id)
    path = anyone.log_inclusion(created, cp.size)
    leaf = merkle.leaf_hash(entries[created].encode())
    assert merkle.verify_inclusion(leaf, created, cp.size, path, cp.root)
    half = cp.size // 2
    proof = anyone.log_consistency(half, cp.size)
    assert merkle.verify_consistency(half, cp.size, proof, tree.root(half), cp.root)
    with pytest.raises(InvalidInput) as info:
        anyone.log_inclusion(0, cp.size + 1000)  # beyond the signed size: a clear 422
    assert info.value.code == "log.out_of_range"
