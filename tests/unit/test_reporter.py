"""The agent's reporter sends reports that end close together as one batch, and hands each
waiting attempt its own outcome or the error that refused it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from flopex import protocol as p
from flopex.agent.reporter import Reporter
from flopex.errors import AttemptFenced, FlopexError, Unavailable


def _body(i: int) -> p.Complete:
    report = {
        "attempt_id": f"att_{i}", "lease_epoch": 1, "node_id": "node_1", "duration_ms": 1,
        "exit_code": 0, "outcome": "completed", "outputs": [], "outputs_salt": "0" * 64,
        "logs_sha256": "0" * 64, "logs_salt": "0" * 64,
    }  # fmt: skip
    return p.Complete(report=p.UsageReport.model_validate(report), signature="sig")


def _completed(body: p.Complete) -> Any:
    return p.Completed.model_construct(attempt=body.report.attempt_id, job_state="succeeded")


def test_reports_ending_together_go_in_one_batch_each_with_its_own_outcome() -> None:
    batches: list[list[str]] = []
    start = threading.Barrier(8)

    def send(bodies: list[p.Complete]) -> list[p.Completed | FlopexError]:
        batches.append([x.report.attempt_id for x in bodies])
        return [
            AttemptFenced("lost") if x.report.attempt_id == "att_3" else _completed(x)
            for x in bodies
        ]

    reporter = Reporter(send, gather_s=0.3)

    def one(i: int) -> str:
        start.wait()
        try:
            return str(reporter.report(_body(i)).attempt)
        except AttemptFenced:
            return "fenced"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert outcomes == [f"att_{i}" if i != 3 else "fenced" for i in range(8)]
    assert sum(len(b) for b in batches) == 8 and len(batches) <= 2


def test_a_batch_that_cannot_be_sent_fails_every_waiting_report() -> None:
    def send(bodies: list[p.Complete]) -> list[p.Completed | FlopexError]:
        raise Unavailable("server gone")

    reporter = Reporter(send, gather_s=0.01)
    with pytest.raises(Unavailable):
        reporter.report(_body(1))
