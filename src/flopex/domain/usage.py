"""The usage report a node signs when an attempt ends: what ran, how long, what it produced.

The signed payload (``flopex.usage.v2``) holds no private content: the outputs (file names and
content hashes) enter it as a salted commitment made by the node, so the payload can go into the
public log as it is, and anyone can check the node's signature there; the consumer opens the
commitment with the salt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flopex.domain.commitment import commit, new_salt
from flopex.domain.signing import canonical_json

USAGE_TYPE = "flopex.usage.v2"


class Outcome(StrEnum):
    COMPLETED = "completed"
    JOB_ERROR = "job_error"
    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class OutputEntry:
    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class UsageReport:
    """Signed by the node's Ed25519 key over its canonical JSON (:meth:`payload`)."""

    attempt_id: str
    lease_epoch: int
    node_id: str
    duration_ms: int
    exit_code: int
    outcome: Outcome
    outputs: tuple[OutputEntry, ...]
    outputs_salt: str = field(default_factory=new_salt)  # hex, chosen by the node

    def outputs_json(self) -> bytes:
        """The committed content: canonical JSON of the output list."""
        return canonical_json(
            [{"path": o.path, "sha256": o.sha256, "size_bytes": o.size_bytes} for o in self.outputs]
        )

    def payload(self) -> dict[str, Any]:
        """The JSON object that is signed (and logged): no private content, only commitments."""
        return {
            "type": USAGE_TYPE,
            "attempt_id": self.attempt_id,
            "lease_epoch": self.lease_epoch,
            "node_id": self.node_id,
            "duration_ms": self.duration_ms,
            "exit_code": self.exit_code,
            "outcome": self.outcome.value,
            "outputs_commitment": commit(self.outputs_salt, self.outputs_json()),
        }

    def wire(self) -> dict[str, Any]:
        """The fields sent to the exchange: the report with its outputs and their salt."""
        return {
            "attempt_id": self.attempt_id,
            "lease_epoch": self.lease_epoch,
            "node_id": self.node_id,
            "duration_ms": self.duration_ms,
            "exit_code": self.exit_code,
            "outcome": self.outcome.value,
            "outputs": [
                {"path": o.path, "sha256": o.sha256, "size_bytes": o.size_bytes}
                for o in self.outputs
            ],
            "outputs_salt": self.outputs_salt,
        }
