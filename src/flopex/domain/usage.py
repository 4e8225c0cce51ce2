"""The usage report a node signs when an attempt ends: what ran, how long, what it produced.

The signed payload (``flopex.usage.v2``) holds no private content: the outputs (file names and
content hashes) and the log stream (the SHA-256 of the chunks the exchange acknowledged, in
sequence order) enter it as salted commitments made by the node, so the payload can go into the
public log as it is, and anyone can check the node's signature there; the consumer opens the
commitments with the salts and checks them against the outputs and logs the exchange shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flopex.domain.commitment import commit, new_salt
from flopex.domain.signing import canonical_json

USAGE_TYPE = "flopex.usage.v2"
EMPTY_LOGS_SHA256 = hashlib.sha256(b"").hexdigest()


def logs_sha256(chunks: list[tuple[int, str]]) -> str:
    """The digest a node commits to: SHA-256 of the UTF-8 chunk texts in sequence order."""
    digest = hashlib.sha256()
    for _, data in sorted(chunks):
        digest.update(data.encode())
    return digest.hexdigest()


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
    logs_sha256: str = EMPTY_LOGS_SHA256  # of the chunks the exchange acknowledged
    logs_salt: str = field(default_factory=new_salt)

    def _outputs(self) -> list[dict[str, Any]]:
        return [
            {"path": o.path, "sha256": o.sha256, "size_bytes": o.size_bytes} for o in self.outputs
        ]

    def _facts(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "lease_epoch": self.lease_epoch,
            "node_id": self.node_id,
            "duration_ms": self.duration_ms,
            "exit_code": self.exit_code,
            "outcome": self.outcome.value,
        }

    def outputs_json(self) -> bytes:
        """The committed content: canonical JSON of the output list."""
        return canonical_json(self._outputs())

    def payload(self) -> dict[str, Any]:
        """The JSON object that is signed (and logged): no private content, only commitments."""
        return {
            "type": USAGE_TYPE,
            **self._facts(),
            "outputs_commitment": commit(self.outputs_salt, self.outputs_json()),
            "logs_commitment": commit(self.logs_salt, self.logs_sha256.encode()),
        }

    def wire(self) -> dict[str, Any]:
        """The fields sent to the exchange: the report with its outputs and their salts."""
        return {
            **self._facts(),
            "outputs": self._outputs(),
            "outputs_salt": self.outputs_salt,
            "logs_sha256": self.logs_sha256,
            "logs_salt": self.logs_salt,
        }
