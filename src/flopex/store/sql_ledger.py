"""The ledger over SQL: rows locked in id order, the domain rules applied, totals written back."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, bindparam, insert, select, update

from flopex.domain import ledger as rules
from flopex.domain.ledger import Balance, Purpose, TransferKind, TransferState
from flopex.errors import NotFound
from flopex.service.records import Hold, TransferRec
from flopex.store.schema import ledger_accounts, transfers
from flopex.store.statements import by_id, inserter, run_update

_LOCK = (
    select(ledger_accounts)
    .where(ledger_accounts.c.id.in_(bindparam("w_in", expanding=True)))
    .order_by(ledger_accounts.c.id)
    .with_for_update()
)
_BY_IDS = select(transfers).where(transfers.c.id.in_(bindparam("w_in", expanding=True)))
_BALANCES = select(ledger_accounts).where(ledger_accounts.c.owner_id == bindparam("w_owner"))
_WRITE = (
    update(ledger_accounts)
    .where(ledger_accounts.c.id == bindparam("w_id"))
    .values(
        debits_pending=bindparam("v_dp"),
        debits_posted=bindparam("v_dq"),
        credits_pending=bindparam("v_cp"),
        credits_posted=bindparam("v_cq"),
    )
)


def _balance(row: object) -> Balance:
    return Balance(
        debits_pending=int(row.debits_pending),  # type: ignore[attr-defined]
        debits_posted=int(row.debits_posted),  # type: ignore[attr-defined]
        credits_pending=int(row.credits_pending),  # type: ignore[attr-defined]
        credits_posted=int(row.credits_posted),  # type: ignore[attr-defined]
    )


def _transfer(row: object) -> TransferRec:
    return TransferRec(**dict(row._mapping))  # type: ignore[attr-defined]


class SqlLedger:
    """Ledger operations inside one open transaction ``conn``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open_account(self, owner_id: str, purpose: Purpose) -> str:
        """Create the ledger account of an owner for a purpose (idempotent)."""
        account_id = rules.ledger_account_id(owner_id, purpose)
        exists = self.conn.execute(
            select(ledger_accounts.c.id).where(ledger_accounts.c.id == account_id)
        ).first()
        if exists is None:
            self.conn.execute(
                insert(ledger_accounts).values(
                    id=account_id,
                    owner_id=owner_id,
                    purpose=purpose.value,
                    guarded=rules.guarded(purpose),
                    debits_pending=0,
                    debits_posted=0,
                    credits_pending=0,
                    credits_posted=0,
                )
            )
        return account_id

    def _lock(self, ids: list[str]) -> dict[str, tuple[Balance, bool]]:
        rows = self.conn.execute(_LOCK, {"w_in": sorted(set(ids))}).all()
        found = {r.id: (_balance(r), bool(r.guarded)) for r in rows}
        for i in ids:
            if i not in found:
                raise NotFound(
                    f"ledger account {i} does not exist", code="ledger.account_not_found"
                )
        return found

    def _write(self, account_id: str, b: Balance) -> None:
        self.conn.execute(
            _WRITE,
            {
                "w_id": account_id,
                "v_dp": b.debits_pending,
                "v_dq": b.debits_posted,
                "v_cp": b.credits_pending,
                "v_cq": b.credits_posted,
            },
        )

    def get_transfer(self, transfer_id: str) -> TransferRec | None:
        """A transfer by id."""
        row = self.conn.execute(by_id(transfers), {"k_id": transfer_id}).first()
        return None if row is None else _transfer(row)

    def transfer(
        self,
        transfer_id: str,
        debit_id: str,
        credit_id: str,
        amount: int,
        *,
        pending: bool,
        now_ms: int,
        job_id: str | None = None,
        memo: str = "",
        log_index: int | None = None,
    ) -> TransferRec:
        """A single-phase or pending transfer, idempotent by id. ``log_index``: the event that
        will log it, if the caller knows it already (it saves an UPDATE later)."""
        existing = self.get_transfer(transfer_id)
        if existing is not None:
            rules.check_same(_as_domain(existing), debit_id, credit_id, amount)
            return existing
        locked = self._lock([debit_id, credit_id])
        (debit, guarded), (credit, _) = locked[debit_id], locked[credit_id]
        apply = rules.apply_pending if pending else rules.apply_single
        new_debit, new_credit = apply(
            debit, credit, amount, debit_id=debit_id, debit_guarded=guarded
        )
        self._write(debit_id, new_debit)
        self._write(credit_id, new_credit)
        values = {
            "id": transfer_id,
            "debit_account_id": debit_id,
            "credit_account_id": credit_id,
            "amount": amount,
            "posted_amount": 0 if pending else amount,
            "kind": (TransferKind.PENDING if pending else TransferKind.SINGLE).value,
            "state": (TransferState.PENDING if pending else TransferState.POSTED).value,
            "job_id": job_id,
            "memo": memo,
            "created_ms": now_ms,
            "resolved_ms": None if pending else now_ms,
            "log_index": log_index,
            "resolved_log_index": None if pending else log_index,
        }
        self.conn.execute(inserter(transfers), values)
        return TransferRec(**values)  # type: ignore[arg-type]

    def hold_many(self, holds: list[Hold], *, now_ms: int) -> list[TransferRec]:
        """Several pending transfers with freshly minted ids, all or none: the rules run on the
        locked totals in memory first (InsufficientFunds before anything is written), then each
        account is written once and the transfers inserted in one statement."""
        ids = [x for h in holds for x in (h.debit_id, h.credit_id)]
        locked = self._lock(ids)
        totals = {k: v[0] for k, v in locked.items()}
        for h in holds:
            totals[h.debit_id], totals[h.credit_id] = rules.apply_pending(
                totals[h.debit_id],
                totals[h.credit_id],
                h.amount,
                debit_id=h.debit_id,
                debit_guarded=locked[h.debit_id][1],
            )
        for account_id in sorted(set(ids)):
            self._write(account_id, totals[account_id])
        recs = [h.record(now_ms) for h in holds]
        if recs:
            self.conn.execute(inserter(transfers), [r.__dict__ for r in recs])
        return recs

    def resolve_many(
        self, items: list[tuple[TransferRec, int | None, int | None]], *, now_ms: int
    ) -> list[TransferRec]:
        """Resolve pending transfers the caller just read in this transaction: (transfer, amount
        to post or None to void, log index of the event that will log it). Each account is
        locked and written once; one no longer pending is refused (``ledger.not_pending``)."""
        ids = [x for t, _, _ in items for x in (t.debit_account_id, t.credit_account_id)]
        totals = {k: v[0] for k, v in self._lock(ids).items()}
        out = []
        for known, post_amount, log_index in items:
            resolved = rules.resolve_state(_as_domain(known), post_amount)
            d, c = known.debit_account_id, known.credit_account_id
            totals[d], totals[c] = rules.apply_post(
                totals[d], totals[c], known.amount, resolved.posted_amount
            )
            out.append(
                replace(
                    known,
                    state=resolved.state.value,
                    posted_amount=resolved.posted_amount,
                    resolved_ms=now_ms,
                    resolved_log_index=log_index,
                )
            )
        for account_id in sorted(set(ids)):
            self._write(account_id, totals[account_id])
        for rec in out:
            self._mark_resolved(rec)
        return out

    def _mark_resolved(self, rec: TransferRec) -> None:
        changed = run_update(
            self.conn,
            transfers,
            {
                "state": rec.state,
                "posted_amount": rec.posted_amount,
                "resolved_ms": rec.resolved_ms,
                "resolved_log_index": rec.resolved_log_index,
            },
            {"id": rec.id, "state": TransferState.PENDING.value},
        )
        if changed != 1:
            raise NotFound(f"transfer {rec.id} is no longer pending", code="ledger.not_pending")

    def transfers_by_id(self, transfer_ids: list[str]) -> dict[str, TransferRec]:
        """Several transfers in one read."""
        rows = self.conn.execute(_BY_IDS, {"w_in": transfer_ids}).all()
        return {r.id: _transfer(r) for r in rows}

    def note_log_index(
        self, transfer_id: str, *, created: int | None = None, resolved: int | None = None
    ) -> None:
        """Record which log events created and resolved a transfer."""
        values = {"log_index": created, "resolved_log_index": resolved}
        values = {k: v for k, v in values.items() if v is not None}
        run_update(self.conn, transfers, values, {"id": transfer_id})

    def balances(self, owner_id: str) -> dict[Purpose, Balance]:
        """Every ledger account of an owner."""
        rows = self.conn.execute(_BALANCES, {"w_owner": owner_id}).all()
        return {Purpose(r.purpose): _balance(r) for r in rows}

    def all_balances(self) -> dict[str, Balance]:
        """Every ledger account (for invariants and audits)."""
        rows = self.conn.execute(select(ledger_accounts)).all()
        return {r.id: _balance(r) for r in rows}

    def transfers_of(self, owner_id: str, *, limit: int, after: str | None) -> list[TransferRec]:
        """An owner's transfers, oldest first, paged by id."""
        prefix = f"{owner_id}:%"
        q = select(transfers).where(
            transfers.c.debit_account_id.like(prefix) | transfers.c.credit_account_id.like(prefix)
        )
        if after:
            q = q.where(transfers.c.id > after)
        rows = self.conn.execute(q.order_by(transfers.c.id).limit(limit)).all()
        return [_transfer(r) for r in rows]

    def pending_of_job(self, job_id: str) -> list[TransferRec]:
        """Transfers of a job still pending."""
        rows = self.conn.execute(
            select(transfers).where(
                transfers.c.job_id == job_id, transfers.c.state == TransferState.PENDING.value
            )
        ).all()
        return [_transfer(r) for r in rows]


def _as_domain(t: TransferRec) -> rules.Transfer:
    return rules.Transfer(
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        TransferKind(t.kind),
        TransferState(t.state),
        t.posted_amount,
    )
