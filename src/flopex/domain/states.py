"""Job and attempt states, reason codes and the allowed transitions (ARCHITECTURE: lifecycle)."""

from __future__ import annotations

from enum import StrEnum

from flopex.errors import InvalidTransition


class JobState(StrEnum):
    QUEUED = "queued"
    MATCHED = "matched"
    RUNNING = "running"
    VALIDATING = "validating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether no transition leaves this state."""
        return self in _TERMINAL


_TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


class AttemptState(StrEnum):
    MATCHED = "matched"  # contract signed, escrow held, not yet claimed by the node
    RUNNING = "running"  # claimed: lease held by the node
    ENDED = "ended"


class Reason(StrEnum):
    COMPLETED = "completed"
    JOB_ERROR = "job_error"
    PROVIDER_LOST = "provider_lost"
    PREEMPTED = "preempted"
    USER_CANCELLED = "user_cancelled"
    DEADLINE_MISSED = "deadline_missed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    VERIFICATION_FAILED = "verification_failed"
    PROVIDER_DRAINED = "provider_drained"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    CLAIM_EXPIRED = "claim_expired"


# Who pays for an attempt that ended with this reason: the consumer pays used time,
# or nobody pays (the attempt is free and the hold is voided).
CONSUMER_PAYS = {Reason.COMPLETED, Reason.JOB_ERROR, Reason.USER_CANCELLED, Reason.BUDGET_EXHAUSTED}

# Attempt reasons after which the job goes back to the queue for a new attempt.
REQUEUE = {Reason.PROVIDER_LOST, Reason.PREEMPTED, Reason.PROVIDER_DRAINED, Reason.CLAIM_EXPIRED}

_JOB_TRANSITIONS: dict[JobState, set[JobState]] = {
    JobState.QUEUED: {JobState.MATCHED, JobState.CANCELLED, JobState.FAILED},
    JobState.MATCHED: {JobState.RUNNING, JobState.QUEUED, JobState.CANCELLED, JobState.FAILED},
    JobState.RUNNING: {
        JobState.QUEUED,
        JobState.VALIDATING,
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
    },
    JobState.VALIDATING: {JobState.SUCCEEDED, JobState.FAILED},
}


def check_job_transition(old: JobState, new: JobState) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is a lifecycle edge."""
    if new not in _JOB_TRANSITIONS.get(old, set()):
        raise InvalidTransition(f"job cannot go from {old} to {new}")


def job_state_after(reason: Reason, *, attempts_left: bool) -> tuple[JobState, Reason | None]:
    """The job's next state when an attempt ends with ``reason`` (and the job's final reason)."""
    if reason == Reason.COMPLETED:
        return JobState.SUCCEEDED, Reason.COMPLETED
    if reason == Reason.USER_CANCELLED:
        return JobState.CANCELLED, Reason.USER_CANCELLED
    if reason in REQUEUE:
        if attempts_left:
            return JobState.QUEUED, None
        return JobState.FAILED, Reason.ATTEMPTS_EXHAUSTED
    return JobState.FAILED, reason
