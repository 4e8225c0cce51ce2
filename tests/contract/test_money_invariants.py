"""Money invariants under any sequence of exchange events, on the real service layer (SQLite).

Hypothesis drives submits, claims, completions, job errors, cancels, drains, silent nodes and the
reaper in any order. After every step: the ledger sums to zero, no user account is negative, every
ended job has no pending transfer left and was settled, and a job's cost is what its attempts
were charged.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from flopex.domain.states import AttemptState, JobState
from flopex.domain.usage import Outcome
from flopex.errors import AttemptFenced, InsufficientFunds
from flopex.service import accounts, attempts, jobs
from flopex.service.context import Context
from tests import builders as b
from tests.conftest import FakeClock, make_context


class Exchange(RuleBasedStateMachine):
    """Two providers, two consumers with little money, jobs coming and going."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="flopex-hyp-"))
        self.clock = FakeClock()
        self.ctx: Context = make_context(
            f"sqlite:///{self.root / 'x.db'}", self.root / "blobs", self.clock, max_attempts=3
        )
        self.providers = [
            b.provider(self.ctx, "p0", price_credits=1, cpus=2),
            b.provider(self.ctx, "p1", price_credits=3, cpus=1, region="jp-kyushu"),
        ]
        self.consumers = [
            b.account(self.ctx, "c0", "consumer", credits=2),
            b.account(self.ctx, "c1", "consumer", credits=1),
        ]
        self.jobs: list[tuple[int, str]] = []  # (consumer index, job id)
        self.running: list[tuple[int, attempts.Assignment]] = []  # (provider index, assignment)

    def teardown(self) -> None:
        self.ctx.store.db.dispose()  # type: ignore[attr-defined]
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(
        who=st.integers(0, 1),
        hours=st.sampled_from(["0.01", "0.1", "0.5"]),
        budget=st.sampled_from([None, "0.05", "0.5", "5"]),
    )
    def submit(self, who: int, hours: str, budget: str | None) -> None:
        flopex: dict[str, object] = {"estimated_hours": float(hours)}
        if budget is not None:
            flopex["budget"] = float(budget)
        try:
            job = jobs.submit(
                self.ctx, self.consumers[who], b.spec(**flopex), workdir_sha256=None, idem_key=None
            )
        except InsufficientFunds:
            return
        self.jobs.append((who, job.id))

    @rule(which=st.integers(0, 1))
    def claim(self, which: int) -> None:
        p = self.providers[which]
        for a in attempts.claim(self.ctx, p.account, p.node.id, 2):
            self.running.append((which, a))

    @precondition(lambda self: self.running)
    @rule(
        pick=st.integers(0, 100),
        seconds=st.integers(0, 4000),
        outcome=st.sampled_from([Outcome.COMPLETED, Outcome.JOB_ERROR, Outcome.CANCELLED]),
    )
    def complete(self, pick: int, seconds: int, outcome: Outcome) -> None:
        which, a = self.running.pop(pick % len(self.running))
        p = self.providers[which]
        self.clock.advance(seconds)
        rep, sig = b.report(p, a.attempt, duration_ms=seconds * 1000, outcome=outcome)
        # A report for an attempt reaped or cancelled meanwhile is fenced: it must not pay.
        with contextlib.suppress(AttemptFenced):
            attempts.complete(self.ctx, p.account, rep, sig)

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 100))
    def drain(self, pick: int) -> None:
        which, a = self.running.pop(pick % len(self.running))
        with contextlib.suppress(AttemptFenced):
            attempts.release(
                self.ctx, self.providers[which].account, a.attempt.id, a.attempt.lease_epoch
            )

    @precondition(lambda self: self.jobs)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        who, job_id = self.jobs[pick % len(self.jobs)]
        jobs.cancel(self.ctx, self.consumers[who], job_id)

    @rule(seconds=st.integers(1, 40), alive=st.sets(st.integers(0, 1)))
    def time_passes(self, seconds: int, alive: set[int]) -> None:
        """Some nodes heartbeat (renewing what they hold), the others fall silent; then reap."""
        self.clock.advance(seconds)
        for i in alive:
            p = self.providers[i]
            held = [(a.attempt.id, a.attempt.lease_epoch) for w, a in self.running if w == i]
            res = b.market.heartbeat(self.ctx, p.account, p.node.id, held, False)
            for attempt_id in res.cancel:  # the agent stops the job and reports it
                self.complete_cancelled(i, attempt_id)
        attempts.reap(self.ctx)

    def complete_cancelled(self, which: int, attempt_id: str) -> None:
        for k, (w, a) in enumerate(self.running):
            if w == which and a.attempt.id == attempt_id:
                del self.running[k]
                rep, sig = b.report(
                    self.providers[which], a.attempt, duration_ms=1000, outcome=Outcome.CANCELLED
                )
                with contextlib.suppress(AttemptFenced):
                    attempts.complete(self.ctx, self.providers[which].account, rep, sig)
                return

    @invariant()
    def money_is_conserved_and_no_user_is_negative(self) -> None:
        b.assert_money_conserved(self.ctx)

    @invariant()
    def ended_jobs_hold_nothing_and_cost_what_their_attempts_cost(self) -> None:
        for who, job_id in self.jobs:
            view = jobs.get(self.ctx, self.consumers[who], job_id)
            charged = sum(a.cost_ucr or 0 for a in view.attempts)
            assert view.job.cost_ucr == charged
            with self.ctx.store.read() as tx:
                pending = tx.ledger.pending_of_job(job_id)
            if view.job.state.terminal:
                assert pending == [], (view.job.state, pending)
                assert view.job.settled_ms is not None
                assert all(a.state == AttemptState.ENDED for a in view.attempts)
            if view.job.state == JobState.QUEUED:
                assert pending == []

    @invariant()
    def consumers_never_hold_more_than_they_were_given(self) -> None:
        for c, given in zip(self.consumers, (2, 1), strict=True):
            bal = accounts.balances(self.ctx, c)
            total = sum(x.net_posted for x in bal.values())
            assert total <= given * b.CREDIT


Exchange.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExchangeMoney = Exchange.TestCase
