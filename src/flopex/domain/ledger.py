"""Double-entry ledger rules, TigerBeetle style: accounts carry four running totals, transfers
are immutable and idempotent by id, and a two-phase transfer is ``pending`` then ``post``
(possibly of less than was held, the rest released) or ``void``.

The SQL store applies exactly these functions to rows it has locked; the in-memory
:class:`Ledger` applies them to dicts (property tests, audit replay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from flopex.errors import IdempotencyConflict, InsufficientFunds, InvalidTransition, RequestInvalid


class Purpose(StrEnum):
    AVAILABLE = "available"  # a user's spendable money
    EARNINGS = "earnings"  # a provider's income from settled contracts
    COLLATERAL = "collateral"
    FEES = "fees"  # the platform's fee income
    EQUITY = "equity"  # the platform's mint: goes negative by what was minted


class TransferKind(StrEnum):
    SINGLE = "single"
    PENDING = "pending"


class TransferState(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    VOIDED = "voided"


PLATFORM = "platform"


def ledger_account_id(owner_id: str, purpose: Purpose) -> str:
    """The ledger account of an owner for one purpose."""
    return f"{owner_id}:{purpose.value}"


def guarded(purpose: Purpose) -> bool:
    """Whether debits may never exceed credits (every account but the platform's equity)."""
    return purpose != Purpose.EQUITY


@dataclass(frozen=True)
class Balance:
    """Running totals of one ledger account (µcr)."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def available(self) -> int:
        """What the owner can still spend: posted credits less posted and pending debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def net_posted(self) -> int:
        """Posted credits less posted debits."""
        return self.credits_posted - self.debits_posted


@dataclass(frozen=True)
class Transfer:
    """An immutable money movement; ``amount`` of a pending one is what was held."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    kind: TransferKind
    state: TransferState
    posted_amount: int = 0


def _check_amount(amount: int) -> None:
    if amount <= 0:
        raise RequestInvalid(f"transfer amount must be > 0 µcr, got {amount}")


def _guard(account_id: str, balance: Balance, is_guarded: bool) -> None:
    if is_guarded and balance.debits_pending + balance.debits_posted > balance.credits_posted:
        raise InsufficientFunds(
            f"account {account_id.split(':', maxsplit=1)[0]} is short by {-balance.available} µcr",
            details={"account": account_id},
        )


def apply_single(
    debit: Balance, credit: Balance, amount: int, *, debit_id: str, debit_guarded: bool
) -> tuple[Balance, Balance]:
    """Move ``amount`` now. Raises :class:`InsufficientFunds` if a guarded debit would overdraw."""
    _check_amount(amount)
    new_debit = replace(debit, debits_posted=debit.debits_posted + amount)
    _guard(debit_id, new_debit, debit_guarded)
    return new_debit, replace(credit, credits_posted=credit.credits_posted + amount)


def apply_pending(
    debit: Balance, credit: Balance, amount: int, *, debit_id: str, debit_guarded: bool
) -> tuple[Balance, Balance]:
    """Hold ``amount`` (escrow): it stops being available to the debit side."""
    _check_amount(amount)
    new_debit = replace(debit, debits_pending=debit.debits_pending + amount)
    _guard(debit_id, new_debit, debit_guarded)
    return new_debit, replace(credit, credits_pending=credit.credits_pending + amount)


def apply_post(
    debit: Balance, credit: Balance, held: int, post_amount: int
) -> tuple[Balance, Balance]:
    """Resolve a pending hold of ``held`` by moving ``post_amount`` (<= held); the rest is freed."""
    if not 0 <= post_amount <= held:
        raise RequestInvalid(f"cannot post {post_amount} of a hold of {held}")
    return (
        replace(
            debit,
            debits_pending=debit.debits_pending - held,
            debits_posted=debit.debits_posted + post_amount,
        ),
        replace(
            credit,
            credits_pending=credit.credits_pending - held,
            credits_posted=credit.credits_posted + post_amount,
        ),
    )


def resolve_state(transfer: Transfer, post_amount: int | None) -> Transfer:
    """The transfer after ``post`` (amount given) or ``void`` (None); only pending ones resolve."""
    if transfer.kind != TransferKind.PENDING or transfer.state != TransferState.PENDING:
        raise InvalidTransition(f"transfer {transfer.id} is {transfer.state}, not pending")
    if post_amount is None or post_amount == 0:
        return replace(transfer, state=TransferState.VOIDED, posted_amount=0)
    return replace(transfer, state=TransferState.POSTED, posted_amount=post_amount)


def check_same(existing: Transfer, debit_id: str, credit_id: str, amount: int) -> None:
    """Idempotency by id: a retried transfer must be the same transfer."""
    if (existing.debit_account_id, existing.credit_account_id, existing.amount) != (
        debit_id,
        credit_id,
        amount,
    ):
        raise IdempotencyConflict(f"transfer id {existing.id} was used for a different transfer")


class Ledger:
    """The same rules over dicts: used by property tests and to replay history."""

    def __init__(self) -> None:
        self.balances: dict[str, Balance] = {}
        self.transfers: dict[str, Transfer] = {}

    def _get(self, account_id: str) -> Balance:
        return self.balances.get(account_id, Balance())

    @staticmethod
    def _guarded(account_id: str) -> bool:
        return guarded(Purpose(account_id.rsplit(":", 1)[1]))

    def transfer(
        self, transfer_id: str, debit_id: str, credit_id: str, amount: int, *, pending: bool
    ) -> Transfer:
        """Apply a single-phase or pending transfer, idempotently by id."""
        if transfer_id in self.transfers:
            check_same(self.transfers[transfer_id], debit_id, credit_id, amount)
            return self.transfers[transfer_id]
        apply = apply_pending if pending else apply_single
        debit, credit = apply(
            self._get(debit_id),
            self._get(credit_id),
            amount,
            debit_id=debit_id,
            debit_guarded=self._guarded(debit_id),
        )
        self.balances[debit_id], self.balances[credit_id] = debit, credit
        kind = TransferKind.PENDING if pending else TransferKind.SINGLE
        state = TransferState.PENDING if pending else TransferState.POSTED
        posted = 0 if pending else amount
        t = Transfer(transfer_id, debit_id, credit_id, amount, kind, state, posted)
        self.transfers[transfer_id] = t
        return t

    def resolve(self, transfer_id: str, post_amount: int | None) -> Transfer:
        """Post (``post_amount``) or void (``None``) a pending transfer."""
        t = self.transfers[transfer_id]
        resolved = resolve_state(t, post_amount)
        debit, credit = apply_post(
            self._get(t.debit_account_id),
            self._get(t.credit_account_id),
            t.amount,
            resolved.posted_amount,
        )
        self.balances[t.debit_account_id], self.balances[t.credit_account_id] = debit, credit
        self.transfers[transfer_id] = resolved
        return resolved

    def pending_count(self) -> int:
        """How many transfers are still pending."""
        return sum(1 for t in self.transfers.values() if t.state == TransferState.PENDING)


def sums_to_zero(balances: list[Balance]) -> bool:
    """Double entry: posted and pending totals over all accounts cancel out."""
    posted = sum(b.credits_posted - b.debits_posted for b in balances)
    pending = sum(b.credits_pending - b.debits_pending for b in balances)
    return posted == 0 and pending == 0
