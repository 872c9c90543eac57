"""SQLModel tables and the API's request/response models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, MetaData
from sqlmodel import Field, SQLModel

LOCAL_CALLER = "local"  # who submitted, when authentication is off

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


def _json(*, nullable: bool = False) -> Any:
    """A JSON column; a fresh Column per table, so base classes can declare it."""
    if nullable:
        return Field(default=None, sa_type=JSON, nullable=True)
    return Field(default_factory=dict, sa_type=JSON, nullable=False)


class RunBase(SQLModel):
    """What a run is: its study roots, artifact folder, mode and options, as stored."""

    phase_c_root: str
    phase_d_root: str
    artifact_root: str
    strict: bool = False
    dry_run: bool = False
    filters: dict[str, Any] = _json()
    design: dict[str, Any] = _json()
    training: dict[str, Any] = _json()
    execution: dict[str, Any] = _json()
    # The pty-chi reconstruction options (engines, epochs, splits, ...); None: no such jobs.
    reconstruction: dict[str, Any] | None = _json(nullable=True)
    submitted_by: str = Field(
        default=LOCAL_CALLER,
        sa_column_kwargs={"server_default": LOCAL_CALLER},
        description="The API token's name, or 'local' when authentication is off",
    )


# On SQLite, ids come from AUTOINCREMENT: a deleted row's id (and so a run's default folder,
# runs/<id>) is never handed out again.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Run(RunBase, table=True):
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    # The last manifest write failed (a full disk, say): the reaper and the next change retry.
    manifest_stale: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class JobBase(SQLModel):
    """What a job is and how far it got, as clients see it."""

    position: int = Field(description="Order within the run: dose ascending, then view")
    kind: str = Field(
        default="train",
        sa_column_kwargs={"server_default": "train"},
        description="train: a network; reconstruct: a pty-chi iterative reconstruction",
    )
    engine: str | None = Field(default=None, description="pty-chi engine of a reconstruction")
    split: str | None = Field(default=None, description="Split a reconstruction reconstructs")
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
    cancel_requested: bool = False
    result: dict[str, Any] | None = _json(nullable=True)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Job(JobBase, table=True):
    # The queue's claim reads the oldest queued job in run order; without this index every
    # claim sorts all queued jobs.
    __table_args__ = (Index("ix_job_claim_order", "status", "run_id", "position"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    lease_token: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, index=True)
    progress_epoch: int | None = Field(default=None, description="Epoch in progress, from 1")
    progress_epochs: int | None = Field(default=None, description="Epochs the attempt will run")
    progress_step: int | None = None
    progress_loss: float | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class AttemptBase(SQLModel):
    """One try at a job: who ran it, where, when, and how it ended."""

    number: int
    worker: str
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    outcome: AttemptOutcome = AttemptOutcome.running
    error: str | None = None
    executor: str | None = Field(default=None, description="Where it ran: local, slurm, ray")


class Attempt(AttemptBase, table=True):
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    lease_token: str


class ApiTokenBase(SQLModel):
    """An API token as people see it: its name and when it was made, used, revoked."""

    name: str = Field(index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiToken(ApiTokenBase, table=True):
    """The secret itself is never stored: only its SHA-256 (see app.auth)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)


class SkipEventBase(SQLModel):
    """A view left out of a run because its data is missing (study.md §6)."""

    dose: float
    view: str
    code: str
    reason: str
    train_exists: bool
    test_exists: bool


class SkipEvent(SkipEventBase, table=True):
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
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


# --- API response models --------------------------------------------------------------


class JobProgress(BaseModel):
    epoch: int | None = PydanticField(None, description="Epoch in progress, counted from 1")
    epochs: int | None = PydanticField(None, description="Epochs the attempt will run")
    step: int | None = None
    loss: float | None = None


class AttemptPublic(AttemptBase):
    """An attempt as clients see it (the lease token stays private)."""


class JobPublic(JobBase):
    id: int
    run_id: int
    progress: JobProgress
    executor: str | None = PydanticField(None, description="The latest attempt's executor")
    attempt_history: list[AttemptPublic]


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class SkipEventPublic(SkipEventBase):
    id: int
    run_id: int
    details: dict[str, Any]


class SkipEventsPublic(BaseModel):
    data: list[SkipEventPublic]
    count: int


class RunPublic(RunBase):
    id: int
    created_at: datetime
    status: RunStatus
    manifest_path: str
    job_count: int
    counts: dict[str, int] = PydanticField(description="Jobs per status")
    skipped_count: int


class RunCreated(RunPublic):
    """The answer to POST /runs: the run with its jobs and skip events."""

    jobs: list[JobPublic]
    skipped_views: list[SkipEventPublic]


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int = PydanticField(description="Runs matching the filter, all pages")
    offset: int
    limit: int


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    database: str
    version: str


class LogChunk(BaseModel):
    """A piece of a job's train.log: bytes [offset, next_offset) of a file of `size` bytes."""

    text: str
    offset: int
    next_offset: int
    size: int
