"""The table of allowed status transitions, its check, and the queue's errors."""

from __future__ import annotations

from collections.abc import Mapping

from app.models import JobStatus

ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled}),
    JobStatus.running: frozenset(
        {JobStatus.succeeded, JobStatus.queued, JobStatus.failed, JobStatus.cancelled}
    ),
    JobStatus.failed: frozenset({JobStatus.queued}),  # retry_run only
    JobStatus.cancelled: frozenset({JobStatus.queued}),  # retry_run only
    JobStatus.succeeded: frozenset(),
    JobStatus.dry_run: frozenset(),
}


class QueueError(Exception):
    """Base of the queue's errors; the API maps them to HTTP answers in one place."""


class JobNotFound(QueueError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")


class RunNotFound(QueueError):
    """No run has this id."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found")


class InvalidTransition(QueueError):
    """The job's status does not allow the requested change."""


def check_transition(source: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransition unless the table allows source → target."""
    if target not in ALLOWED_TRANSITIONS[JobStatus(source)]:
        raise InvalidTransition(f"a {source} job cannot become {target}")


def status_after_failure(failures: int, max_attempts: int, cancel_requested: bool) -> JobStatus:
    if cancel_requested:
        return JobStatus.cancelled  # a cancelled job is never retried automatically
    return JobStatus.queued if failures < max_attempts else JobStatus.failed
