"""SQLModel tables and the API's request/response models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, MetaData
from sqlmodel import Field, SQLModel

# Stable constraint names, so batch migrations on SQLite can find them again.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    """Aware UTC now; SQLModel stores it as UTC and returns it aware, on SQLite too."""
    return datetime.now(UTC)


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    dry_run = "dry_run"  # enumerated by a dry run: never trained, final at once


TERMINAL_STATUSES = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.dry_run}
)


class RunStatus(StrEnum):
    """Derived from the run's jobs, never stored."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    dry_run = "dry_run"


class AttemptOutcome(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # the job raised or the child crashed: counts against max_attempts
    expired = "expired"  # the lease ran out (worker died): counts against max_attempts
    interrupted = "interrupted"  # worker shut down gracefully: does not count
    cancelled = "cancelled"


class Run(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    phase_c_root: str
    phase_d_root: str
    artifact_root: str
    strict: bool = False
    dry_run: bool = False
    filters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    design: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    training: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    execution: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Job(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    position: int = Field(description="Order within the run: dose ascending, then view")
    dose: float
    view: str
    gridsize: int
    train_data_path: str
    test_data_path: str
    log_path: str
    artifact_dir: str
    status: JobStatus = Field(default=JobStatus.queued, index=True)
    attempts: int = Field(default=0, description="Attempts started, all kinds")
    failures: int = Field(default=0, description="Attempts that count against max_attempts")
    max_attempts: int = 3
    lease_token: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, index=True)
    cancel_requested: bool = False
    progress_epoch: int | None = None
    progress_step: int | None = None
    progress_loss: float | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Attempt(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    number: int
    worker: str
    lease_token: str
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    outcome: AttemptOutcome = AttemptOutcome.running
    error: str | None = None


class SkipEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    dose: float
    view: str
    code: str
    reason: str
    train_exists: bool
    test_exists: bool
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def derive_run_status(statuses: list[JobStatus]) -> RunStatus:
    """A run's status from its jobs' statuses (a run with no jobs has succeeded)."""
    present = set(statuses)
    if present & {JobStatus.queued, JobStatus.running}:
        started = present - {JobStatus.queued}
        return RunStatus.running if started else RunStatus.queued
    if JobStatus.failed in present:
        return RunStatus.failed
    if JobStatus.cancelled in present:
        return RunStatus.cancelled
    if present == {JobStatus.dry_run}:
        return RunStatus.dry_run
    return RunStatus.succeeded
