"""Replay the exchange's log events with the ledger's rules, trusting nothing the server computed.

An auditor feeds every event, in log order, to :class:`Replay`; it rebuilds each ledger account's
four running totals from the transfer events (TigerBeetle-style two-phase transfers: pending,
then posted — possibly in part, the rest released — or voided) and each job's state, and stops at
the first event that breaks a rule, naming its index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flopex.domain.ledger import Balance


@dataclass
class Totals:
    """A ledger account's running totals as the replay rebuilds them (µcr)."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def balance(self) -> Balance:
        """As the ledger's value type."""
        return Balance(
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted
        )


class ReplayError(ValueError):
    """Event ``index`` breaks a rule."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index}: {message}")
        self.index = index


@dataclass
class OpenTransfer:
    debit: str
    credit: str
    amount: int
    state: str


def _int(event: dict[str, Any], key: str, index: int) -> int:
    value = event.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReplayError(index, f"{key} must be a non-negative integer, got {value!r}")
    return value


@dataclass
class Replay:
    """Balances and job states rebuilt from events."""

    balances: dict[str, Totals] = field(default_factory=dict)
    transfers: dict[str, OpenTransfer] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    events: int = 0

    def apply(self, index: int, event: dict[str, Any]) -> None:
        """Apply one event; :class:`ReplayError` when it breaks a rule."""
        kind = event.get("kind")
        if not isinstance(kind, str):
            raise ReplayError(index, "event has no kind")
        if kind.startswith("transfer."):
            self._transfer(index, kind.removeprefix("transfer."), event)
        elif kind == "job.submitted":
            self._job(index, event, None, "queued")
        elif kind == "contract.signed":
            self._job(index, event, {"queued"}, "matched")
        elif kind == "attempt.started":
            self._job(index, event, {"matched"}, "running")
        elif kind == "attempt.ended":
            state = event.get("job_state")
            self._job(index, event, {"matched", "running"}, str(state))
        elif kind == "job.ended":
            self._job(index, event, {"queued"}, str(event.get("state")))
        self.events += 1

    def _job(self, index: int, event: dict[str, Any], before: set[str] | None, after: str) -> None:
        job = event.get("job")
        if not isinstance(job, str):
            raise ReplayError(index, "event names no job")
        now = self.jobs.get(job)
        if before is None and now is not None:
            raise ReplayError(index, f"job {job} submitted twice")
        if before is not None and now not in before:
            raise ReplayError(index, f"job {job} is {now}, cannot move to {after}")
        self.jobs[job] = after

    def _account(self, account_id: object, index: int) -> Totals:
        if not isinstance(account_id, str) or not account_id:
            raise ReplayError(index, "transfer names no ledger account")
        return self.balances.setdefault(account_id, Totals())

    def _transfer(self, index: int, state: str, event: dict[str, Any]) -> None:
        tid = event.get("transfer")
        if not isinstance(tid, str):
            raise ReplayError(index, "transfer event has no id")
        amount, posted = _int(event, "amount_ucr", index), _int(event, "posted_ucr", index)
        debit_id, credit_id = event.get("debit"), event.get("credit")
        debit, credit = self._account(debit_id, index), self._account(credit_id, index)
        known = self.transfers.get(tid)
        if state == "pending":
            if known is not None:
                raise ReplayError(index, f"transfer {tid} appears twice")
            debit.debits_pending += amount
            credit.credits_pending += amount
            self.transfers[tid] = OpenTransfer(str(debit_id), str(credit_id), amount, "pending")
            return
        if state not in ("posted", "voided"):
            raise ReplayError(index, f"unknown transfer state {state!r}")
        if posted > amount or (state == "voided" and posted != 0):
            raise ReplayError(index, f"transfer {tid} posts {posted} of {amount} µcr")
        if known is None:  # single-phase
            if state != "posted" or posted != amount:
                raise ReplayError(index, f"transfer {tid} resolved without being pending")
            self.transfers[tid] = OpenTransfer(str(debit_id), str(credit_id), amount, "posted")
        else:
            if known.state != "pending":
                raise ReplayError(index, f"transfer {tid} resolved twice")
            if (known.debit, known.credit, known.amount) != (debit_id, credit_id, amount):
                raise ReplayError(index, f"transfer {tid} changed its accounts or amount")
            debit.debits_pending -= amount
            credit.credits_pending -= amount
            known.state = state
        debit.debits_posted += posted
        credit.credits_posted += posted

    def check_invariants(self) -> None:
        """Money sums to zero and no user account went negative (the equity mint may)."""
        posted = sum(b.credits_posted - b.debits_posted for b in self.balances.values())
        pending = sum(b.credits_pending - b.debits_pending for b in self.balances.values())
        if posted != 0 or pending != 0:
            raise ReplayError(self.events - 1, f"ledger does not sum to zero ({posted}, {pending})")
        for account_id, totals in self.balances.items():
            available = totals.balance().available
            if not account_id.endswith(":equity") and available < 0:
                raise ReplayError(self.events - 1, f"{account_id} is negative ({available} µcr)")
