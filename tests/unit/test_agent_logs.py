"""The agent posts each log chunk under one sequence number, retries it a bounded number of
times, and its signed report commits to exactly the chunks the exchange acknowledged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex import protocol as p
from flopex.agent import loop
from flopex.agent.hardware import Hardware
from flopex.agent.loop import Agent, AgentConfig, Running
from flopex.domain.usage import logs_sha256
from flopex.errors import Unavailable


class FlakyClient:
    """Refuses the first ``failures`` posts of every chunk; keeps what it acknowledged."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries: dict[int, int] = {}
        self.stored: list[tuple[int, str]] = []

    def post_log(self, attempt_id: str, epoch: int, seq: int, data: str) -> None:
        self.tries[seq] = self.tries.get(seq, 0) + 1
        if self.tries[seq] <= self.failures:
            raise Unavailable("the server hiccupped")
        self.stored.append((seq, data))


def _run(client: FlakyClient, tmp_path: Path) -> Running:
    hw = Hardware(cpus=1, memory_bytes=1 << 30, gpus=(), accelerator=None, simulated=True,
                  os="linux", driver=None)  # fmt: skip
    agent = Agent(client, Ed25519PrivateKey.generate(), hw, AgentConfig("jp-tokyo", 1), tmp_path)  # type: ignore[arg-type]
    assignment = p.Assignment(
        attempt_id="att_1", lease_epoch=1, job_id="job_1", contract={}, contract_signature="",
        spec={"run": "echo one; sleep 0.2; echo two"}, workdir_sha256=None, time_limit_s=30,
    )  # fmt: skip
    run = Running("att_1", 1)
    agent._run(assignment, run)
    return run


def test_a_chunk_refused_once_is_retried_under_the_same_number(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loop.time, "sleep", lambda s: None)
    client = FlakyClient(failures=1)
    run = _run(client, tmp_path)
    assert client.stored, "the chunks arrived"
    assert all(n == 2 for n in client.tries.values())  # each retried once, same seq
    assert [s for s, _ in client.stored] == sorted(client.tries)
    assert run.logs.hexdigest() == logs_sha256(client.stored)
    assert "".join(d for _, d in client.stored) == "one\ntwo\n"


def test_a_chunk_never_acknowledged_is_not_committed_and_keeps_its_number(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loop.time, "sleep", lambda s: None)
    client = FlakyClient(failures=loop.LOG_CHUNK_TRIES)  # every chunk is lost
    run = _run(client, tmp_path)
    assert not client.stored
    assert all(n == loop.LOG_CHUNK_TRIES for n in client.tries.values())
    assert len(client.tries) >= 1 and sorted(client.tries) == list(range(len(client.tries)))
    assert run.logs.hexdigest() == logs_sha256([])
