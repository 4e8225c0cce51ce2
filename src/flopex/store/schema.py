"""Tables (SQLAlchemy Core). Times are integer milliseconds since the epoch, UTC; money is
integer µcr (BigInteger); sizes are bytes. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ID = 40  # prefixed ids are 30-ish chars

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("roles", String(200), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("log_index", BigInteger),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("owner_id", String(ID), nullable=False, index=True),
    Column("purpose", String(20), nullable=False),
    Column("guarded", Boolean, nullable=False),
    Column("debits_pending", BigInteger, nullable=False, default=0),
    Column("debits_posted", BigInteger, nullable=False, default=0),
    Column("credits_pending", BigInteger, nullable=False, default=0),
    Column("credits_posted", BigInteger, nullable=False, default=0),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("debit_account_id", String(80), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("credit_account_id", String(80), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("posted_amount", BigInteger, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("state", String(10), nullable=False),
    Column("job_id", String(ID)),
    Column("memo", String(200), nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("resolved_ms", BigInteger),
    Column("log_index", BigInteger),  # the event that created it (pending, or single-phase)
    Column("resolved_log_index", BigInteger),  # the event that posted or voided it
    Index("ix_transfers_debit", "debit_account_id"),
    Index("ix_transfers_credit", "credit_account_id"),
    Index("ix_transfers_job", "job_id"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False),
    Column("public_key", String(64), nullable=False, unique=True),
    Column("hardware", Text, nullable=False),
    Column("region", String(64), nullable=False),
    Column("simulated", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("draining", Boolean, nullable=False, default=False),
    Column("log_index", BigInteger),
)

offers = Table(
    "offers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("node_id", String(ID), ForeignKey("nodes.id"), nullable=False, index=True),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False),
    Column("accelerator", String(40)),
    Column("devices", Integer, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("memory_bytes", BigInteger, nullable=False),
    Column("region", String(64), nullable=False),
    Column("price_ucr_per_device_hour", BigInteger, nullable=False),
    Column("interruptible", Boolean, nullable=False),
    Column("simulated", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("used_devices", Integer, nullable=False, default=0),
    Column("used_cpus", Integer, nullable=False, default=0),
    Column("used_memory_bytes", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_offers_active", "active"),
    Column("log_index", BigInteger),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200)),
    Column("kind", String(20), nullable=False),
    Column("spec", Text, nullable=False),
    Column("secrets_sealed", Text),
    Column("workdir_sha256", String(64)),
    Column("state", String(20), nullable=False),
    Column("reason", String(40)),
    Column("max_attempts", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("deadline_ms", BigInteger),
    Column("cost_ucr", BigInteger, nullable=False, default=0),
    Column("fee_ucr", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("settled_ms", BigInteger),
    Index("ix_jobs_account", "account_id", "id"),
    Index("ix_jobs_state", "state", "id"),
    Column("log_index", BigInteger),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("job_id", String(ID), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("offer_id", String(ID), ForeignKey("offers.id"), nullable=False),
    Column("node_id", String(ID), ForeignKey("nodes.id"), nullable=False),
    Column("contract_id", String(ID), nullable=False),
    Column("region", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("lease_epoch", Integer, nullable=False, default=0),
    Column("lease_expires_ms", BigInteger, nullable=False),
    Column("devices", Integer, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("memory_bytes", BigInteger, nullable=False),
    Column("hourly_ucr", BigInteger, nullable=False),
    Column("time_limit_s", Integer, nullable=False),
    Column("hold_cost_id", String(80), nullable=False),
    Column("hold_fee_id", String(80)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("claimed_ms", BigInteger),
    Column("ended_ms", BigInteger),
    Column("reason", String(40)),
    Column("exit_code", Integer),
    Column("billed_ms", BigInteger),
    Column("cost_ucr", BigInteger),
    Column("fee_ucr", BigInteger),
    Column("usage", Text),
    Column("usage_signature", String(120)),
    Column("log_index", BigInteger),
    Index("ix_attempts_node_state", "node_id", "state"),
    Index("ix_attempts_state_lease", "state", "lease_expires_ms"),
)

contracts = Table(
    "contracts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("job_id", String(ID), ForeignKey("jobs.id"), nullable=False, index=True),
    Column("attempt_id", String(ID), nullable=False, unique=True),
    Column("consumer_id", String(ID), nullable=False),
    Column("provider_id", String(ID), nullable=False),
    Column("body", Text, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("signature", String(120), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("log_index", BigInteger),
)

job_logs = Table(
    "job_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(ID), nullable=False),
    Column("attempt_id", String(ID), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("attempt_id", "seq", name="uq_job_logs_attempt_seq"),
    Index("ix_job_logs_job", "job_id", "id"),
)

outputs = Table(
    "outputs",
    metadata,
    Column("job_id", String(ID), nullable=False, primary_key=True),
    Column("path", String(1024), nullable=False, primary_key=True),
    Column("attempt_id", String(ID), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

blob_refs = Table(
    "blob_refs",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("scope", String(40), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("object_id", String(80), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# -- the tamper-evident log (RFC 9162 tree over canonical-JSON events) --------------------------
log_entries = Table(
    "log_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("data", Text, nullable=False),  # canonical JSON (RFC 8785) of the event
    Column("created_ms", BigInteger, nullable=False),
)

log_nodes = Table(  # hashes of complete subtrees, written when entries are integrated
    "log_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

log_checkpoints = Table(  # signed notes, one per integrated size
    "log_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

log_cosignatures = Table(  # witnesses' cosignature lines on checkpoints they verified
    "log_cosignatures",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("witness", String(200), primary_key=True),
    Column("line", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

log_openings = Table(  # salts and contents behind an event's commitments, for its parties
    "log_openings",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", String(ID)),  # the party that may read it (auditors read all)
    Column("fields", Text, nullable=False),  # JSON {field: {"salt": hex, "content": text}}
    Index("ix_log_openings_account", "account_id", "idx"),
)
