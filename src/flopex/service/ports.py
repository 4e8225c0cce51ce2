"""Ports of the service layer: what it needs from storage and blobs, as Protocols.

``flopex.store`` implements them with SQLAlchemy Core; the protocols are kept in step with it
(``tests/unit/test_ports.py`` checks the store satisfies them).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from flopex.domain.ledger import Balance, Purpose
from flopex.domain.states import AttemptState, JobState
from flopex.service.records import (
    AccountRec,
    AttemptRec,
    ContractRec,
    Hold,
    IdemRec,
    JobRec,
    LogRec,
    NodeRec,
    OfferRec,
    OutputRec,
    TransferRec,
)


class LedgerPort(Protocol):
    """Port implemented by ``SqlLedger`` in ``flopex.store``."""

    def open_account(self, owner_id: str, purpose: Purpose) -> str:
        """Create the ledger account of an owner for a purpose (idempotent)."""
        ...

    def get_transfer(self, transfer_id: str) -> TransferRec | None:
        """A transfer by id."""
        ...

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
        ...

    def hold_many(self, holds: list[Hold], *, now_ms: int) -> list[TransferRec]:
        """Several pending transfers with freshly minted ids, all or none: the rules run on the
        locked totals in memory first (InsufficientFunds before anything is written), then each
        account is written once and the transfers inserted in one statement."""
        ...

    def resolve_many(
        self, items: list[tuple[TransferRec, int | None, int | None]], *, now_ms: int
    ) -> list[TransferRec]:
        """Resolve pending transfers the caller just read in this transaction: (transfer, amount
        to post or None to void, log index of the event that will log it). Each account is
        locked and written once; one no longer pending is refused (``ledger.not_pending``)."""
        ...

    def transfers_by_id(self, transfer_ids: list[str]) -> dict[str, TransferRec]:
        """Several transfers in one read."""
        ...

    def note_log_index(
        self, transfer_id: str, *, created: int | None = None, resolved: int | None = None
    ) -> None:
        """Record which log events created and resolved a transfer."""
        ...

    def balances(self, owner_id: str) -> dict[Purpose, Balance]:
        """Every ledger account of an owner."""
        ...

    def all_balances(self) -> dict[str, Balance]:
        """Every ledger account (for invariants and audits)."""
        ...

    def transfers_of(self, owner_id: str, *, limit: int, after: str | None) -> list[TransferRec]:
        """An owner's transfers, oldest first, paged by id."""
        ...

    def pending_of_job(self, job_id: str) -> list[TransferRec]:
        """Transfers of a job still pending."""
        ...


class Tx(Protocol):
    """Port implemented by ``SqlTx`` in ``flopex.store``."""

    @property
    def ledger(self) -> LedgerPort:
        """The ledger of this transaction."""
        ...

    def insert_account(self, rec: AccountRec) -> bool:
        """Insert an account; False when the name is taken."""
        ...

    def get_account(self, account_id: str) -> AccountRec | None:
        """An account by id."""
        ...

    def account_by_name(self, name: str) -> AccountRec | None:
        """An account by its unique name."""
        ...

    def insert_token(self, token_id: str, account_id: str, token_sha256: str, now_ms: int) -> None:
        """Store a token's hash (never the token)."""
        ...

    def account_by_token(self, token_sha256: str) -> AccountRec | None:
        """The account owning an unrevoked token hash."""
        ...

    def revoke_token(self, token_id: str, account_id: str, now_ms: int) -> bool:
        """Revoke one of the account's tokens."""
        ...

    def insert_node(self, rec: NodeRec) -> None:
        """Register a node."""
        ...

    def get_node(self, node_id: str) -> NodeRec | None:
        """A node by id."""
        ...

    def node_by_key(self, public_key: str) -> NodeRec | None:
        """A node by its Ed25519 public key."""
        ...

    def update_node(self, node_id: str, **values: Any) -> None:
        """Change a node's mutable facts (last seen, region, hardware, draining)."""
        ...

    def insert_offer(self, rec: OfferRec) -> None:
        """Publish an offer."""
        ...

    def get_offer(self, offer_id: str) -> OfferRec | None:
        """An offer by id."""
        ...

    def offers(self, *, active_only: bool = True, node_id: str | None = None) -> list[OfferRec]:
        """Offers, oldest first."""
        ...

    def nodes_seen(self, node_ids: list[str]) -> dict[str, NodeRec]:
        """Nodes by id."""
        ...

    def set_offer_active(self, offer_id: str, active: bool) -> None:
        """Withdraw or relist an offer."""
        ...

    def take_capacity(self, offer_id: str, devices: int, cpus: int, memory_bytes: int) -> bool:
        """Atomically reserve capacity of an active offer; False when it no longer fits."""
        ...

    def release_capacity(self, offer_id: str, devices: int, cpus: int, memory_bytes: int) -> None:
        """Give back capacity an attempt held."""
        ...

    def insert_job(self, rec: JobRec) -> None:
        """Store a new job."""
        ...

    def get_job(self, job_id: str) -> JobRec | None:
        """A job by id."""
        ...

    def jobs_of(
        self, account_id: str | None, *, limit: int, after: str | None, state: JobState | None
    ) -> list[JobRec]:
        """An account's jobs (every account's: None), newest first, paged by id."""
        ...

    def queued_jobs(self, limit: int) -> list[JobRec]:
        """The oldest queued jobs."""
        ...

    def update_job(self, job_id: str, expect: set[JobState] | None, **values: Any) -> bool:
        """Change a job if it is in one of the ``expect`` states; False otherwise."""
        ...

    def insert_attempt(self, rec: AttemptRec) -> None:
        """Store a new attempt."""
        ...

    def get_attempt(self, attempt_id: str) -> AttemptRec | None:
        """An attempt by id."""
        ...

    def attempts_of(self, job_id: str) -> list[AttemptRec]:
        """A job's attempts, oldest first."""
        ...

    def attempts_of_jobs(self, job_ids: list[str]) -> dict[str, list[AttemptRec]]:
        """The attempts of several jobs in one query, oldest first per job."""
        ...

    def attempts_on_node(self, node_id: str, state: AttemptState, limit: int) -> list[AttemptRec]:
        """A node's attempts in one state, oldest first."""
        ...

    def claim_attempt(self, attempt_id: str, *, now_ms: int, lease_expires_ms: int) -> bool:
        """matched -> running, raising the lease epoch; False if someone else got there first."""
        ...

    def renew_lease(self, attempt_id: str, epoch: int, node_id: str, lease_expires_ms: int) -> bool:
        """Extend a running attempt's lease if the caller holds the current epoch."""
        ...

    def end_attempt(
        self, attempt_id: str, *, expect: AttemptState, epoch: int | None, **values: Any
    ) -> bool:
        """Close an attempt in state ``expect`` (and lease ``epoch`` when given) exactly once."""
        ...

    def update_attempt_money(
        self, attempt_id: str, *, billed_ms: int, cost_ucr: int, fee_ucr: int
    ) -> None:
        """Record what an ended attempt was billed."""
        ...

    def request_cancel(self, attempt_id: str) -> None:
        """Flag a running attempt so its node stops it at the next heartbeat."""
        ...

    def expired_attempts(self, now_ms: int, limit: int) -> list[AttemptRec]:
        """Matched or running attempts whose claim window or lease has passed."""
        ...

    def running_jobs_of_provider(self, account_id: str) -> list[JobRec]:
        """Jobs with an attempt running on one of the provider's nodes."""
        ...

    def insert_contract(self, rec: ContractRec) -> None:
        """Store a signed contract (never updated)."""
        ...

    def get_contract(self, contract_id: str) -> ContractRec | None:
        """A contract by id."""
        ...

    def insert_log(self, job_id: str, attempt_id: str, seq: int, data: str, now_ms: int) -> bool:
        """Append a log chunk; False when this (attempt, seq) was already stored (a retry)."""
        ...

    def logs_after(self, job_id: str, after_id: int, limit: int) -> list[LogRec]:
        """A job's log chunks after ``after_id``, in arrival order."""
        ...

    def insert_outputs(self, rows: list[OutputRec]) -> None:
        """Record a successful attempt's output files."""
        ...

    def outputs_of(self, job_id: str) -> list[OutputRec]:
        """A job's output files, by path."""
        ...

    def blob_size(self, sha256: str) -> int | None:
        """The stored size of a blob, or None."""
        ...

    def add_blob(self, sha256: str, size_bytes: int, account_id: str, now_ms: int) -> None:
        """Record a blob and that ``account_id`` may read it (idempotent)."""
        ...

    def has_blob_ref(self, account_id: str, sha256: str) -> bool:
        """Whether ``account_id`` owns (may read) a blob."""
        ...

    def get_idem(self, account_id: str, key: str) -> IdemRec | None:
        """What an Idempotency-Key created before."""
        ...

    def put_idem(self, account_id: str, key: str, rec: IdemRec, now_ms: int) -> None:
        """Remember what an Idempotency-Key created (same transaction as the creation)."""
        ...

    def append_log(self, data: str, now_ms: int) -> int:
        """Append an event; the index is the next free one (writers are serialised)."""
        ...

    def append_logs(self, datas: list[str], now_ms: int) -> int:
        """Append events in one statement; returns the index of the first."""
        ...

    def next_log_index(self) -> int:
        """The index the next appended event will get (writers are serialised)."""
        ...

    def log_size(self) -> int:
        """How many events the log holds."""
        ...

    def log_entries(self, start: int, end: int) -> list[str]:
        """Events ``[start, end)`` in order."""
        ...

    def log_node(self, level: int, index: int) -> bytes:
        """A stored complete-subtree hash."""
        ...

    def put_log_nodes(self, rows: list[tuple[int, int, bytes]]) -> None:
        """Store complete-subtree hashes."""
        ...

    def put_log_opening(self, idx: int, account_id: str | None, fields: str) -> None:
        """Keep the salts and contents behind event ``idx``'s commitments for its party."""
        ...

    def log_openings(self, start: int, end: int, account_id: str | None) -> list[tuple[int, str]]:
        """(index, fields JSON) of the openings in ``[start, end)``: one party's, or all."""
        ...

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, note) of the newest checkpoint."""
        ...

    def insert_checkpoint(self, size: int, note: str, now_ms: int) -> None:
        """Store a signed checkpoint."""
        ...

    def checkpoint_at(self, size: int) -> str | None:
        """The signed checkpoint note of one size."""
        ...

    def put_cosignature(self, size: int, witness: str, line: str, now_ms: int) -> None:
        """Store (or replace) a witness's cosignature line."""
        ...

    def cosignatures(self, size: int) -> list[str]:
        """Cosignature lines on one checkpoint, by witness name."""
        ...

    def newest_cosigned(self, witnesses: int) -> int | None:
        """The largest size with at least ``witnesses`` cosignatures."""
        ...


class Store(Protocol):
    """Transactions over the exchange's state."""

    kind: str

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only transaction."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes."""

    def path(self, sha256: str) -> Path:
        """Where a blob lives."""
        ...

    def put(self, sha256: str, data: bytes) -> None:
        """Store bytes under their hash."""
        ...
