"""Wire models of the ``/v1`` API (pydantic 2). Additive changes only; ``/openapi.json`` is the
contract. Money fields end in ``_ucr`` (integer µcr), sizes in ``_bytes``, durations in ``_s``,
times are RFC 3339 UTC strings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flopex.domain.states import AttemptState, JobState, Reason
from flopex.domain.usage import Outcome


class Model(BaseModel):
    """Strict base: unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(Model):
    code: str
    message: str
    hint: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(Model):
    error: ErrorInfo


class Health(Model):
    status: str
    version: str
    database: str
    exchange_public_key: str


class AccountCreate(Model):
    name: str
    roles: list[str] = Field(default_factory=lambda: ["consumer"])


class Account(Model):
    id: str
    name: str
    roles: list[str]
    created_at: str
    log_index: int | None = Field(None, description="the log event that created it")


class AccountCreated(Model):
    account: Account
    token: str | None = Field(None, description="shown once; null on an idempotent replay")


class Balances(Model):
    account: Account
    available_ucr: int
    held_ucr: int
    earnings_ucr: int


class LedgerAccount(Model):
    id: str
    debits_pending_ucr: int
    debits_posted_ucr: int
    credits_pending_ucr: int
    credits_posted_ucr: int


class LedgerSummary(Model):
    accounts: list[LedgerAccount]
    sum_ucr: int = Field(description="sum of posted balances over all accounts: always 0")
    pending_ucr: int = Field(description="sum of pending balances over all accounts: always 0")
    held_ucr: int = Field(description="total still held in escrow")
    fees_ucr: int = Field(description="the platform's fee income")


class TokenCreated(Model):
    id: str
    token: str


class Mint(Model):
    account: str = Field(description="account name or id")
    amount_ucr: int = Field(gt=0)


class Transfer(Model):
    id: str
    debit_account_id: str
    credit_account_id: str
    amount_ucr: int
    posted_ucr: int
    kind: str
    state: str
    job_id: str | None
    memo: str
    created_at: str
    log_index: int | None = Field(None, description="the log event that created it")
    resolved_log_index: int | None = Field(
        None, description="the log event that posted or voided it"
    )


class TransferPage(Model):
    transfers: list[Transfer]
    next_cursor: str | None


class NodeCreate(Model):
    public_key: str = Field(description="base64 raw Ed25519 public key")
    hardware: dict[str, Any]
    region: str
    simulated: bool = False


class Node(Model):
    id: str
    account_id: str
    public_key: str
    hardware: dict[str, Any]
    region: str
    simulated: bool
    created_at: str
    last_seen_at: str
    draining: bool
    log_index: int | None = Field(None, description="the log event that created it")


class OfferCreate(Model):
    node_id: str
    accelerator: str | None = None
    devices: int = Field(0, ge=0)
    cpus: int = Field(ge=1)
    memory_bytes: int = Field(ge=0)
    region: str | None = None
    price_ucr_per_device_hour: int
    interruptible: bool = False


class Offer(Model):
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
    devices_free: int
    cpus_free: int
    memory_free_bytes: int
    node_online: bool
    created_at: str
    log_index: int | None = Field(None, description="the log event that created it")


class OfferList(Model):
    offers: list[Offer]


class RunningAttempt(Model):
    attempt_id: str
    lease_epoch: int


class Heartbeat(Model):
    running: list[RunningAttempt] = Field(default_factory=list, max_length=1024)
    draining: bool = False


class HeartbeatReply(Model):
    renewed: list[str]
    cancel: list[str]
    fenced: list[str]
    lease_ttl_s: float


class JobCreate(Model):
    spec: dict[str, Any]
    workdir_sha256: str | None = None


class JobBatchCreate(Model):
    jobs: list[JobCreate] = Field(max_length=1000)


class Attempt(Model):
    id: str
    node_id: str
    offer_id: str
    contract_id: str
    region: str
    state: AttemptState
    lease_epoch: int
    reason: Reason | None
    exit_code: int | None
    created_at: str
    claimed_at: str | None
    ended_at: str | None
    hourly_ucr: int
    time_limit_s: int
    billed_ms: int | None
    cost_ucr: int | None
    fee_ucr: int | None
    log_index: int | None = Field(None, description="the contract.signed event that created it")


class Job(Model):
    id: str
    name: str | None
    kind: str
    state: JobState
    reason: Reason | None
    spec: dict[str, Any]
    workdir_sha256: str | None
    attempts: list[Attempt]
    max_attempts: int
    node_id: str | None
    region: str | None
    cost_ucr: int = Field(description="settled cost so far (excluding fees)")
    fee_ucr: int
    running_cost_ucr: int = Field(description="cost so far including the running attempt")
    created_at: str
    updated_at: str
    settled_at: str | None
    log_index: int | None = Field(None, description="the log event that created it")


class JobPage(Model):
    jobs: list[Job]
    next_cursor: str | None


class JobBatch(Model):
    jobs: list[Job]


class OfferVerdict(Model):
    offer_id: str
    node_id: str
    region: str
    accelerator: str | None
    price_ucr_per_device_hour: int
    feasible: bool
    chosen: bool
    reasons: list[str]
    hourly_ucr: int | None
    hold_ucr: int | None


class Explanation(Model):
    job: Job
    verdicts: list[OfferVerdict]
    summary: str


class LogChunk(Model):
    id: int
    attempt_id: str
    seq: int
    data: str
    created_at: str


class LogPage(Model):
    chunks: list[LogChunk]
    next_cursor: int
    done: bool


class LogPost(Model):
    lease_epoch: int
    seq: int = Field(ge=0)
    data: str = Field(max_length=1 << 20)


class OutputFile(Model):
    path: str
    sha256: str
    size_bytes: int


class OutputList(Model):
    outputs: list[OutputFile]


class Claim(Model):
    node_id: str
    max: int = Field(1, ge=1, le=64)
    wait_s: float = Field(0, ge=0, le=60)


class Assignment(Model):
    attempt_id: str
    lease_epoch: int
    job_id: str
    contract: dict[str, Any]
    contract_signature: str
    spec: dict[str, Any]
    workdir_sha256: str | None
    time_limit_s: int


class ClaimReply(Model):
    assignments: list[Assignment]
    lease_ttl_s: float
    heartbeat_interval_s: float


class UsageOutput(Model):
    path: str
    sha256: str
    size_bytes: int = Field(ge=0)


class UsageReport(Model):
    attempt_id: str
    lease_epoch: int
    node_id: str
    duration_ms: int = Field(ge=0)
    exit_code: int
    outcome: Outcome
    outputs: list[UsageOutput] = Field(default_factory=list, max_length=10_000)
    outputs_salt: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="hex salt of the outputs commitment the signed payload carries",
    )
    logs_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the log chunks the exchange acknowledged, in sequence order",
    )
    logs_salt: str = Field(pattern=r"^[0-9a-f]{64}$", description="salt of the logs commitment")


class Complete(Model):
    report: UsageReport
    signature: str


class Release(Model):
    lease_epoch: int


class Completed(Model):
    attempt: Attempt
    job_state: JobState


class CompleteBatch(Model):
    """Several signed usage reports, settled in one transaction, each on its own."""

    reports: list[Complete] = Field(max_length=64)


class CompletionResult(Model):
    """One report's outcome: settled (``completed``) or refused (``error``)."""

    attempt_id: str
    completed: Completed | None = None
    error: ErrorInfo | None = None


class CompletionResults(Model):
    results: list[CompletionResult]


class Contract(Model):
    id: str
    body: dict[str, Any]
    body_sha256: str
    signature: str
    exchange_public_key: str
    created_at: str
    log_index: int | None = Field(None, description="the log event that created it")


class BlobStored(Model):
    sha256: str
    size_bytes: int


class LogKey(Model):
    """How to verify the log's checkpoints."""

    origin: str
    verifier_key: str  # name+keyid+base64(0x01 || Ed25519 public key), as Go's sumdb/note
    public_key: str  # base64 raw Ed25519 key (the exchange key)


class LogEntries(Model):
    """Events ``start ..`` as canonical JSON text: leaf data is exactly these UTF-8 bytes."""

    start: int
    entries: list[str]


class LogOpening(Model):
    """The salts and contents behind one event's commitments."""

    index: int
    fields: dict[str, dict[str, str]] = Field(description='{field: {"salt", "content"}}')


class LogOpenings(Model):
    """The caller's openings among events ``start ..`` (all of them for an auditor)."""

    start: int
    end: int
    openings: list[LogOpening]


class LogProof(Model):
    """An RFC 9162 proof: base64 hashes, bottom-up."""

    hashes: list[str]


class Cosignature(Model):
    """A witness's cosignature on a checkpoint it verified."""

    size: int = Field(ge=0)
    signature_line: str = Field(max_length=1000, description="— <name> base64(id||time||sig)\\n")
    witness_key: str = Field(max_length=300, description="the witness's type 0x04 verifier key")
