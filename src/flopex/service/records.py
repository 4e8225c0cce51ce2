"""Records the storage port returns: plain frozen dataclasses, no database types."""

from __future__ import annotations

from dataclasses import dataclass

from flopex.domain.states import AttemptState, JobState, Reason


@dataclass(frozen=True)
class AccountRec:
    id: str
    name: str
    roles: tuple[str, ...]
    created_ms: int
    log_index: int | None = None  # the log event that created it


@dataclass(frozen=True)
class NodeRec:
    id: str
    account_id: str
    public_key: str
    hardware: str
    region: str
    simulated: bool
    created_ms: int
    last_seen_ms: int
    draining: bool
    log_index: int | None = None  # the log event that created it


@dataclass(frozen=True)
class OfferRec:
    id: str
    node_id: str
    account_id: str
    accelerator: str | None
    devices: int
    cpus: int
    memory_bytes: int
    region: str
    price_ucr_per_device_hour: int
    interruptible: bool
    simulated: bool
    active: bool
    used_devices: int
    used_cpus: int
    used_memory_bytes: int
    created_ms: int
    log_index: int | None = None  # the log event that created it


@dataclass(frozen=True)
class JobRec:
    id: str
    account_id: str
    name: str | None
    kind: str
    spec: str
    secrets_sealed: str | None
    workdir_sha256: str | None
    state: JobState
    reason: Reason | None
    max_attempts: int
    attempts: int
    deadline_ms: int | None
    cost_ucr: int
    fee_ucr: int
    created_ms: int
    updated_ms: int
    settled_ms: int | None
    log_index: int | None = None  # the log event that created it


@dataclass(frozen=True)
class AttemptRec:
    id: str
    job_id: str
    offer_id: str
    node_id: str
    contract_id: str
    region: str
    state: AttemptState
    lease_epoch: int
    lease_expires_ms: int
    devices: int
    cpus: int
    memory_bytes: int
    hourly_ucr: int
    time_limit_s: int
    hold_cost_id: str
    hold_fee_id: str | None
    cancel_requested: bool
    created_ms: int
    claimed_ms: int | None
    ended_ms: int | None
    reason: Reason | None
    exit_code: int | None
    billed_ms: int | None
    cost_ucr: int | None
    fee_ucr: int | None
    usage: str | None
    usage_signature: str | None
    log_index: int | None = None  # the contract.signed event that created it


@dataclass(frozen=True)
class ContractRec:
    id: str
    job_id: str
    attempt_id: str
    consumer_id: str
    provider_id: str
    body: str
    body_sha256: str
    signature: str
    created_ms: int
    log_index: int | None = None  # the log event that created it


@dataclass(frozen=True)
class TransferRec:
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    posted_amount: int
    kind: str
    state: str
    job_id: str | None
    memo: str
    created_ms: int
    resolved_ms: int | None
    log_index: int | None = None  # the event that created it (pending, or single-phase)
    resolved_log_index: int | None = None  # the event that posted or voided it


@dataclass(frozen=True)
class Hold:
    """A pending transfer to make (escrow), with the log event that will log it."""

    id: str
    debit_id: str
    credit_id: str
    amount: int
    job_id: str | None
    memo: str
    log_index: int | None = None

    def record(self, now_ms: int) -> TransferRec:
        """The transfer row it becomes."""
        return TransferRec(
            id=self.id,
            debit_account_id=self.debit_id,
            credit_account_id=self.credit_id,
            amount=self.amount,
            posted_amount=0,
            kind="pending",
            state="pending",
            job_id=self.job_id,
            memo=self.memo,
            created_ms=now_ms,
            resolved_ms=None,
            log_index=self.log_index,
        )


@dataclass(frozen=True)
class LogRec:
    id: int
    job_id: str
    attempt_id: str
    seq: int
    data: str
    created_ms: int


@dataclass(frozen=True)
class OutputRec:
    job_id: str
    path: str
    attempt_id: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class IdemRec:
    scope: str
    request_sha256: str
    object_id: str
