"""The storage port over SQLAlchemy Core: one :class:`SqlTx` per transaction.

Every state change that must be atomic across processes is a conditional ``UPDATE ... WHERE``
checked by its row count (claims, capacity, lease fencing), so several servers may share one
PostgreSQL without a job ever running twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from flopex.domain.states import AttemptState, JobState, Reason
from flopex.service.ports import Store, Tx
from flopex.service.records import (
    AccountRec,
    AttemptRec,
    ContractRec,
    IdemRec,
    JobRec,
    LogRec,
    NodeRec,
    OfferRec,
    OutputRec,
)
from flopex.store import schema as t
from flopex.store.engine import Database
from flopex.store.sql_ledger import SqlLedger
from flopex.store.sql_log import SqlLog
from flopex.store.statements import by_id, inserter, run_update

_ACCOUNT_BY_TOKEN = (
    select(t.accounts)
    .join(t.tokens, t.tokens.c.account_id == t.accounts.c.id)
    .where(t.tokens.c.token_sha256 == bindparam("w_sha"), t.tokens.c.revoked_ms.is_(None))
)
_ACTIVE_OFFERS = select(t.offers).where(t.offers.c.active.is_(True)).order_by(t.offers.c.id)
_NODES_IN = select(t.nodes).where(t.nodes.c.id.in_(bindparam("w_in", expanding=True)))
_o = t.offers.c
_TAKE = (
    update(t.offers)
    .where(
        _o.id == bindparam("w_id"),
        _o.active.is_(True),
        _o.used_devices + bindparam("d") <= _o.devices,
        _o.used_cpus + bindparam("c") <= _o.cpus,
        _o.used_memory_bytes + bindparam("m") <= _o.memory_bytes,
    )
    .values(
        used_devices=_o.used_devices + bindparam("d"),
        used_cpus=_o.used_cpus + bindparam("c"),
        used_memory_bytes=_o.used_memory_bytes + bindparam("m"),
    )
)
_RELEASE = (
    update(t.offers)
    .where(_o.id == bindparam("w_id"))
    .values(
        used_devices=_o.used_devices - bindparam("d"),
        used_cpus=_o.used_cpus - bindparam("c"),
        used_memory_bytes=_o.used_memory_bytes - bindparam("m"),
    )
)
_QUEUED = (
    select(t.jobs)
    .where(t.jobs.c.state == JobState.QUEUED.value)
    .order_by(t.jobs.c.id)
    .limit(bindparam("lim"))
)
_a = t.attempts.c
_ATTEMPTS_OF = select(t.attempts).where(_a.job_id == bindparam("w_job")).order_by(_a.id)
_ATTEMPTS_ON_NODE = (
    select(t.attempts)
    .where(_a.node_id == bindparam("w_node"), _a.state == bindparam("w_state"))
    .order_by(_a.id)
    .limit(bindparam("lim"))
)
_CLAIM = (
    update(t.attempts)
    .where(_a.id == bindparam("w_id"), _a.state == AttemptState.MATCHED.value)
    .values(
        state=AttemptState.RUNNING.value,
        lease_epoch=_a.lease_epoch + 1,
        claimed_ms=bindparam("v_claimed"),
        lease_expires_ms=bindparam("v_expires"),
    )
)
_RENEW = (
    update(t.attempts)
    .where(
        _a.id == bindparam("w_id"),
        _a.node_id == bindparam("w_node"),
        _a.lease_epoch == bindparam("w_epoch"),
        _a.state == AttemptState.RUNNING.value,
    )
    .values(lease_expires_ms=bindparam("v_expires"))
)


def _fields(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _account(row: Any) -> AccountRec:
    f = _fields(row)
    f["roles"] = tuple(r for r in f["roles"].split(",") if r)
    return AccountRec(**f)


def _job(row: Any) -> JobRec:
    f = _fields(row)
    f["state"] = JobState(f["state"])
    f["reason"] = Reason(f["reason"]) if f["reason"] else None
    return JobRec(**f)


def _attempt(row: Any) -> AttemptRec:
    f = _fields(row)
    f["state"] = AttemptState(f["state"])
    f["reason"] = Reason(f["reason"]) if f["reason"] else None
    return AttemptRec(**f)


class SqlTx(SqlLog):
    """All reads and writes of one transaction (the log's in :class:`SqlLog`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.ledger = SqlLedger(conn)
        self._next_log_idx: int | None = None

    # -- accounts and tokens ---------------------------------------------------------------
    def insert_account(self, rec: AccountRec) -> bool:
        """Insert an account; False when the name is taken."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(t.accounts).values(
                        id=rec.id,
                        name=rec.name,
                        roles=",".join(rec.roles),
                        created_ms=rec.created_ms,
                        log_index=rec.log_index,
                    )
                )
        except IntegrityError:
            return False
        return True

    def get_account(self, account_id: str) -> AccountRec | None:
        """An account by id."""
        row = self.conn.execute(by_id(t.accounts), {"k_id": account_id}).first()
        return None if row is None else _account(row)

    def account_by_name(self, name: str) -> AccountRec | None:
        """An account by its unique name."""
        row = self.conn.execute(select(t.accounts).where(t.accounts.c.name == name)).first()
        return None if row is None else _account(row)

    def insert_token(self, token_id: str, account_id: str, token_sha256: str, now_ms: int) -> None:
        """Store a token's hash (never the token)."""
        self.conn.execute(
            insert(t.tokens).values(
                id=token_id, account_id=account_id, token_sha256=token_sha256, created_ms=now_ms
            )
        )

    def account_by_token(self, token_sha256: str) -> AccountRec | None:
        """The account owning an unrevoked token hash."""
        row = self.conn.execute(_ACCOUNT_BY_TOKEN, {"w_sha": token_sha256}).first()
        return None if row is None else _account(row)

    def revoke_token(self, token_id: str, account_id: str, now_ms: int) -> bool:
        """Revoke one of the account's tokens."""
        res = self.conn.execute(
            update(t.tokens)
            .where(
                t.tokens.c.id == token_id,
                t.tokens.c.account_id == account_id,
                t.tokens.c.revoked_ms.is_(None),
            )
            .values(revoked_ms=now_ms)
        )
        return res.rowcount == 1

    # -- nodes and offers --------------------------------------------------------------------
    def insert_node(self, rec: NodeRec) -> None:
        """Register a node."""
        self.conn.execute(inserter(t.nodes), rec.__dict__)

    def get_node(self, node_id: str) -> NodeRec | None:
        """A node by id."""
        row = self.conn.execute(by_id(t.nodes), {"k_id": node_id}).first()
        return None if row is None else NodeRec(**_fields(row))

    def node_by_key(self, public_key: str) -> NodeRec | None:
        """A node by its Ed25519 public key."""
        row = self.conn.execute(select(t.nodes).where(t.nodes.c.public_key == public_key)).first()
        return None if row is None else NodeRec(**_fields(row))

    def update_node(self, node_id: str, **values: Any) -> None:
        """Change a node's mutable facts (last seen, region, hardware, draining)."""
        run_update(self.conn, t.nodes, values, {"id": node_id})

    def insert_offer(self, rec: OfferRec) -> None:
        """Publish an offer."""
        self.conn.execute(inserter(t.offers), rec.__dict__)

    def get_offer(self, offer_id: str) -> OfferRec | None:
        """An offer by id."""
        row = self.conn.execute(by_id(t.offers), {"k_id": offer_id}).first()
        return None if row is None else OfferRec(**_fields(row))

    def offers(self, *, active_only: bool = True, node_id: str | None = None) -> list[OfferRec]:
        """Offers, oldest first."""
        if active_only and node_id is None:
            return [OfferRec(**_fields(r)) for r in self.conn.execute(_ACTIVE_OFFERS).all()]
        q = select(t.offers)
        if active_only:
            q = q.where(t.offers.c.active.is_(True))
        if node_id is not None:
            q = q.where(t.offers.c.node_id == node_id)
        return [OfferRec(**_fields(r)) for r in self.conn.execute(q.order_by(t.offers.c.id)).all()]

    def nodes_seen(self, node_ids: list[str]) -> dict[str, NodeRec]:
        """Nodes by id."""
        rows = self.conn.execute(_NODES_IN, {"w_in": node_ids}).all()
        return {r.id: NodeRec(**_fields(r)) for r in rows}

    def set_offer_active(self, offer_id: str, active: bool) -> None:
        """Withdraw or relist an offer."""
        self.conn.execute(update(t.offers).where(t.offers.c.id == offer_id).values(active=active))

    def take_capacity(self, offer_id: str, devices: int, cpus: int, memory_bytes: int) -> bool:
        """Atomically reserve capacity of an active offer; False when it no longer fits."""
        params = {"w_id": offer_id, "d": devices, "c": cpus, "m": memory_bytes}
        return self.conn.execute(_TAKE, params).rowcount == 1

    def release_capacity(self, offer_id: str, devices: int, cpus: int, memory_bytes: int) -> None:
        """Give back capacity an attempt held."""
        params = {"w_id": offer_id, "d": devices, "c": cpus, "m": memory_bytes}
        self.conn.execute(_RELEASE, params)

    # -- jobs ------------------------------------------------------------------------------
    def insert_job(self, rec: JobRec) -> None:
        """Store a new job."""
        values = rec.__dict__ | {"state": rec.state.value, "reason": rec.reason}
        self.conn.execute(inserter(t.jobs), values)

    def get_job(self, job_id: str) -> JobRec | None:
        """A job by id."""
        row = self.conn.execute(by_id(t.jobs), {"k_id": job_id}).first()
        return None if row is None else _job(row)

    def jobs_of(
        self, account_id: str | None, *, limit: int, after: str | None, state: JobState | None
    ) -> list[JobRec]:
        """An account's jobs (every account's: None), newest first, paged by id."""
        q = select(t.jobs)
        if account_id is not None:
            q = q.where(t.jobs.c.account_id == account_id)
        if after:
            q = q.where(t.jobs.c.id < after)
        if state is not None:
            q = q.where(t.jobs.c.state == state.value)
        rows = self.conn.execute(q.order_by(t.jobs.c.id.desc()).limit(limit)).all()
        return [_job(r) for r in rows]

    def queued_jobs(self, limit: int) -> list[JobRec]:
        """The oldest queued jobs."""
        rows = self.conn.execute(_QUEUED, {"lim": limit}).all()
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, expect: set[JobState] | None, **values: Any) -> bool:
        """Change a job if it is in one of the ``expect`` states; False otherwise."""
        for key in ("state", "reason"):
            if key in values and values[key] is not None:
                values[key] = str(values[key])
        if expect is None:
            return run_update(self.conn, t.jobs, values, {"id": job_id}) == 1
        states = sorted(s.value for s in expect)
        changed = run_update(
            self.conn, t.jobs, values, {"id": job_id}, in_column="state", in_values=states
        )
        return changed == 1

    # -- attempts and contracts --------------------------------------------------------------
    def insert_attempt(self, rec: AttemptRec) -> None:
        """Store a new attempt."""
        values = rec.__dict__ | {"state": rec.state.value, "reason": rec.reason}
        self.conn.execute(inserter(t.attempts), values)

    def get_attempt(self, attempt_id: str) -> AttemptRec | None:
        """An attempt by id."""
        row = self.conn.execute(by_id(t.attempts), {"k_id": attempt_id}).first()
        return None if row is None else _attempt(row)

    def attempts_of(self, job_id: str) -> list[AttemptRec]:
        """A job's attempts, oldest first."""
        rows = self.conn.execute(_ATTEMPTS_OF, {"w_job": job_id}).all()
        return [_attempt(r) for r in rows]

    def attempts_of_jobs(self, job_ids: list[str]) -> dict[str, list[AttemptRec]]:
        """The attempts of several jobs in one query, oldest first per job."""
        out: dict[str, list[AttemptRec]] = {j: [] for j in job_ids}
        if not job_ids:
            return out
        rows = self.conn.execute(
            select(t.attempts).where(t.attempts.c.job_id.in_(job_ids)).order_by(t.attempts.c.id)
        ).all()
        for r in rows:
            out[r.job_id].append(_attempt(r))
        return out

    def attempts_on_node(self, node_id: str, state: AttemptState, limit: int) -> list[AttemptRec]:
        """A node's attempts in one state, oldest first."""
        params = {"w_node": node_id, "w_state": state.value, "lim": limit}
        rows = self.conn.execute(_ATTEMPTS_ON_NODE, params).all()
        return [_attempt(r) for r in rows]

    def claim_attempt(self, attempt_id: str, *, now_ms: int, lease_expires_ms: int) -> bool:
        """matched -> running, raising the lease epoch; False if someone else got there first."""
        params = {"w_id": attempt_id, "v_claimed": now_ms, "v_expires": lease_expires_ms}
        return self.conn.execute(_CLAIM, params).rowcount == 1

    def renew_lease(self, attempt_id: str, epoch: int, node_id: str, lease_expires_ms: int) -> bool:
        """Extend a running attempt's lease if the caller holds the current epoch."""
        params = {
            "w_id": attempt_id,
            "w_node": node_id,
            "w_epoch": epoch,
            "v_expires": lease_expires_ms,
        }
        return self.conn.execute(_RENEW, params).rowcount == 1

    def end_attempt(
        self, attempt_id: str, *, expect: AttemptState, epoch: int | None, **values: Any
    ) -> bool:
        """Close an attempt in state ``expect`` (and lease ``epoch`` when given) exactly once."""
        where: dict[str, Any] = {"id": attempt_id, "state": expect.value}
        if epoch is not None:
            where["lease_epoch"] = epoch
        values["state"] = AttemptState.ENDED.value
        if values.get("reason") is not None:
            values["reason"] = str(values["reason"])
        return run_update(self.conn, t.attempts, values, where) == 1

    def update_attempt_money(
        self, attempt_id: str, *, billed_ms: int, cost_ucr: int, fee_ucr: int
    ) -> None:
        """Record what an ended attempt was billed."""
        values = {"billed_ms": billed_ms, "cost_ucr": cost_ucr, "fee_ucr": fee_ucr}
        run_update(self.conn, t.attempts, values, {"id": attempt_id})

    def request_cancel(self, attempt_id: str) -> None:
        """Flag a running attempt so its node stops it at the next heartbeat."""
        self.conn.execute(
            update(t.attempts).where(t.attempts.c.id == attempt_id).values(cancel_requested=True)
        )

    def expired_attempts(self, now_ms: int, limit: int) -> list[AttemptRec]:
        """Matched or running attempts whose claim window or lease has passed."""
        a = t.attempts.c
        rows = self.conn.execute(
            select(t.attempts)
            .where(
                a.state.in_([AttemptState.MATCHED.value, AttemptState.RUNNING.value]),
                a.lease_expires_ms < now_ms,
            )
            .order_by(a.lease_expires_ms)
            .limit(limit)
        ).all()
        return [_attempt(r) for r in rows]

    def running_jobs_of_provider(self, account_id: str) -> list[JobRec]:
        """Jobs with an attempt running on one of the provider's nodes."""
        a = t.attempts.c
        rows = self.conn.execute(
            select(t.jobs)
            .join(t.attempts, a.job_id == t.jobs.c.id)
            .join(t.nodes, t.nodes.c.id == a.node_id)
            .where(t.nodes.c.account_id == account_id, a.state == AttemptState.RUNNING.value)
        ).all()
        return [_job(r) for r in rows]

    def insert_contract(self, rec: ContractRec) -> None:
        """Store a signed contract (never updated)."""
        self.conn.execute(inserter(t.contracts), rec.__dict__)

    def get_contract(self, contract_id: str) -> ContractRec | None:
        """A contract by id."""
        row = self.conn.execute(by_id(t.contracts), {"k_id": contract_id}).first()
        return None if row is None else ContractRec(**_fields(row))

    # -- logs, outputs, blobs --------------------------------------------------------------
    def insert_log(self, job_id: str, attempt_id: str, seq: int, data: str, now_ms: int) -> bool:
        """Append a log chunk; False when this (attempt, seq) was already stored (a retry)."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(t.job_logs).values(
                        job_id=job_id, attempt_id=attempt_id, seq=seq, data=data, created_ms=now_ms
                    )
                )
        except IntegrityError:
            return False
        return True

    def logs_after(self, job_id: str, after_id: int, limit: int) -> list[LogRec]:
        """A job's log chunks after ``after_id``, in arrival order."""
        rows = self.conn.execute(
            select(t.job_logs)
            .where(t.job_logs.c.job_id == job_id, t.job_logs.c.id > after_id)
            .order_by(t.job_logs.c.id)
            .limit(limit)
        ).all()
        return [LogRec(**_fields(r)) for r in rows]

    def insert_outputs(self, rows: list[OutputRec]) -> None:
        """Record a successful attempt's output files."""
        if rows:
            self.conn.execute(insert(t.outputs), [r.__dict__ for r in rows])

    def outputs_of(self, job_id: str) -> list[OutputRec]:
        """A job's output files, by path."""
        rows = self.conn.execute(
            select(t.outputs).where(t.outputs.c.job_id == job_id).order_by(t.outputs.c.path)
        ).all()
        return [OutputRec(**_fields(r)) for r in rows]

    def blob_size(self, sha256: str) -> int | None:
        """The stored size of a blob, or None."""
        row = self.conn.execute(
            select(t.blobs.c.size_bytes).where(t.blobs.c.sha256 == sha256)
        ).first()
        return None if row is None else int(row[0])

    def add_blob(self, sha256: str, size_bytes: int, account_id: str, now_ms: int) -> None:
        """Record a blob and that ``account_id`` may read it (idempotent)."""
        if self.blob_size(sha256) is None:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        insert(t.blobs).values(
                            sha256=sha256, size_bytes=size_bytes, created_ms=now_ms
                        )
                    )
            except IntegrityError:
                pass
        if not self.has_blob_ref(account_id, sha256):
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        insert(t.blob_refs).values(
                            account_id=account_id, sha256=sha256, created_ms=now_ms
                        )
                    )
            except IntegrityError:
                pass

    def has_blob_ref(self, account_id: str, sha256: str) -> bool:
        """Whether ``account_id`` owns (may read) a blob."""
        row = self.conn.execute(
            select(func.count())
            .select_from(t.blob_refs)
            .where(t.blob_refs.c.account_id == account_id, t.blob_refs.c.sha256 == sha256)
        ).scalar_one()
        return int(row) > 0

    # -- idempotency -------------------------------------------------------------------------
    def get_idem(self, account_id: str, key: str) -> IdemRec | None:
        """What an Idempotency-Key created before."""
        row = self.conn.execute(
            select(
                t.idempotency.c.scope, t.idempotency.c.request_sha256, t.idempotency.c.object_id
            ).where(t.idempotency.c.account_id == account_id, t.idempotency.c.key == key)
        ).first()
        return None if row is None else IdemRec(row.scope, row.request_sha256, row.object_id)

    def put_idem(self, account_id: str, key: str, rec: IdemRec, now_ms: int) -> None:
        """Remember what an Idempotency-Key created (same transaction as the creation)."""
        self.conn.execute(
            insert(t.idempotency).values(
                account_id=account_id,
                key=key,
                scope=rec.scope,
                request_sha256=rec.request_sha256,
                object_id=rec.object_id,
                created_ms=now_ms,
            )
        )


class SqlStore:
    """The storage port: transactions over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.kind = db.kind

    @contextmanager
    def write(self) -> Iterator[SqlTx]:
        """A write transaction."""
        with self.db.write() as conn:
            yield SqlTx(conn)

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        """A read-only transaction."""
        with self.db.read() as conn:
            yield SqlTx(conn)


def _conforms(store: SqlStore, tx: SqlTx) -> tuple[Store, Tx]:
    """Never called: lets mypy check that the adapter satisfies the service's ports."""
    return store, tx
