"""The usage report a node signs when an attempt ends: what ran, how long, what it produced."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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

    def payload(self) -> dict[str, Any]:
        """The JSON object that is signed."""
        return {
            "type": "flopex.usage.v1",
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
        }
