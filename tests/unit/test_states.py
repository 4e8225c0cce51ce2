"""Job lifecycle: allowed edges and what each attempt reason does to the job."""

from __future__ import annotations

import pytest

from flopex.domain.states import JobState, Reason, check_job_transition, job_state_after
from flopex.errors import InvalidTransition


def test_terminal_states_have_no_way_out() -> None:
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        assert state.terminal
        with pytest.raises(InvalidTransition):
            check_job_transition(state, JobState.QUEUED)


def test_running_may_go_back_to_queued_on_provider_loss() -> None:
    check_job_transition(JobState.RUNNING, JobState.QUEUED)
    assert job_state_after(Reason.PROVIDER_LOST, attempts_left=True) == (JobState.QUEUED, None)


def test_provider_loss_without_attempts_left_fails_the_job() -> None:
    assert job_state_after(Reason.PROVIDER_LOST, attempts_left=False) == (
        JobState.FAILED,
        Reason.ATTEMPTS_EXHAUSTED,
    )


def test_job_error_fails_and_completed_succeeds() -> None:
    assert job_state_after(Reason.JOB_ERROR, attempts_left=True) == (
        JobState.FAILED,
        Reason.JOB_ERROR,
    )
    assert job_state_after(Reason.COMPLETED, attempts_left=True) == (
        JobState.SUCCEEDED,
        Reason.COMPLETED,
    )
