"""The table of allowed status transitions and its check (errors: `app.errors`)."""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import InvalidTransition
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


def check_transition(source: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransition unless the table allows source → target."""
    if target not in ALLOWED_TRANSITIONS[JobStatus(source)]:
        raise InvalidTransition(f"a {source} job cannot become {target}")


def status_after_failure(failures: int, max_attempts: int, cancel_requested: bool) -> JobStatus:
    if cancel_requested:
        return JobStatus.cancelled  # a cancelled job is never retried automatically
    return JobStatus.queued if failures < max_attempts else JobStatus.failed
