"""The job queue: the only code that changes a job's status.

Every change is the conditional UPDATE of `switch_status` (WHERE status = source), checked
against the table of allowed transitions; a write from a worker also names the job's lease
token, so a write that matches no row means the job was taken away (lease expired and
reaped, cancelled). Each worker call is one short write transaction (`BEGIN IMMEDIATE` on
SQLite, row locks with `SKIP LOCKED` on PostgreSQL); no transaction is held while a job
trains.
"""

from app.errors import InvalidTransition
from app.queue.control import cancel_job, cancel_run, retry_job, retry_run
from app.queue.hot_path import warm_up
from app.queue.leases import (
    ClaimedJob,
    HeartbeatReply,
    Progress,
    claim_next_job,
    complete_job,
    confirm_cancelled,
    fail_attempt,
    heartbeat,
    release_job,
)
from app.queue.reaper import requeue_expired
from app.queue.statements import ATTEMPT, ERROR_MAX_CHARS, JOB, RUN
from app.queue.transitions import ALLOWED_TRANSITIONS, check_transition

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ATTEMPT",
    "ERROR_MAX_CHARS",
    "JOB",
    "RUN",
    "ClaimedJob",
    "HeartbeatReply",
    "InvalidTransition",
    "Progress",
    "cancel_job",
    "cancel_run",
    "check_transition",
    "claim_next_job",
    "complete_job",
    "confirm_cancelled",
    "fail_attempt",
    "heartbeat",
    "release_job",
    "requeue_expired",
    "retry_job",
    "retry_run",
    "warm_up",
]
