"""The worker's per-job statements, compiled once per engine, and the run options cache."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.engine import Dialect

from app.core.db import Prepared
from app.models import JobStatus
from app.queue.statements import ATTEMPT, END_ATTEMPT, JOB, LEASE_CLEARED, RUN, SWITCH_FENCED

_OLDEST_QUEUED = (
    select(JOB.c.id)
    .where(JOB.c.status == JobStatus.queued)
    .order_by(JOB.c.run_id, JOB.c.position, JOB.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite already holds the write lock
    .scalar_subquery()
)
_CLAIMED = (
    JOB.c.id,
    JOB.c.run_id,
    JOB.c.position,
    JOB.c.attempts,
    JOB.c.kind,
    JOB.c.engine,
    JOB.c.split,
    JOB.c.dose,
    JOB.c.view,
    JOB.c.gridsize,
    JOB.c.train_data_path,
    JOB.c.test_data_path,
    JOB.c.log_path,
    JOB.c.artifact_dir,
)
_CLAIM = (
    update(JOB)
    .where(JOB.c.id == _OLDEST_QUEUED, JOB.c.status == JobStatus.queued)
    .values(attempts=JOB.c.attempts + 1)
    .returning(*_CLAIMED)
)
CLAIMED_NAMES = tuple(column.name for column in _CLAIMED)
_INSERT_ATTEMPT = insert(ATTEMPT)
_RUN_OPTIONS = select(RUN.c.training, RUN.c.execution, RUN.c.design, RUN.c.reconstruction).where(
    RUN.c.id == bindparam("b_run")
)
RunOptions = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]
_RUN_OPTIONS_CACHE: weakref.WeakKeyDictionary[Engine, dict[int, RunOptions]] = (
    weakref.WeakKeyDictionary()
)
_RUN_OPTIONS_CACHE_SIZE = 256
_HEARTBEAT = (
    update(JOB)
    .where(
        JOB.c.id == bindparam("b_id"),
        JOB.c.lease_token == bindparam("b_token"),
        JOB.c.status == JobStatus.running,
    )
    .returning(JOB.c.cancel_requested)
)


# The columns each hot statement sets (its SET clause is compiled for exactly these).
PROGRESS_KEYS = ("progress_epoch", "progress_epochs", "progress_step", "progress_loss")
_CLAIM_KEYS = (
    *("status", "lease_token", "lease_owner", "lease_expires_at", "started_at", "updated_at"),
    *PROGRESS_KEYS,
)
_ATTEMPT_KEYS = ("job_id", "number", "worker", "lease_token", "started_at", "outcome", "executor")
_BEAT_KEYS = ("lease_expires_at", "updated_at")
_COMPLETE_KEYS = ("status", "result", "error", "finished_at", "updated_at", *LEASE_CLEARED)


class HotPath:
    """The statements a worker runs per job, compiled once for one engine's dialect.

    They run through `driver_transaction`, which keeps the write lock for the SQL alone:
    with several workers on one SQLite file, time spent inside the lock is what they wait for.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.claim = Prepared(_CLAIM, dialect, _CLAIM_KEYS)
        self.insert_attempt = Prepared(_INSERT_ATTEMPT, dialect, _ATTEMPT_KEYS)
        self.end_attempt = Prepared(END_ATTEMPT, dialect, ("outcome", "ended_at", "error"))
        self.heartbeat = {
            False: Prepared(_HEARTBEAT, dialect, _BEAT_KEYS),
            True: Prepared(_HEARTBEAT, dialect, (*_BEAT_KEYS, *PROGRESS_KEYS)),
        }
        self.complete = {
            False: Prepared(SWITCH_FENCED, dialect, _COMPLETE_KEYS),
            True: Prepared(SWITCH_FENCED, dialect, (*_COMPLETE_KEYS, *PROGRESS_KEYS)),
        }


_HOT_PATHS: weakref.WeakKeyDictionary[Engine, HotPath] = weakref.WeakKeyDictionary()


def hot_path_for(engine: Engine) -> HotPath:
    hot = _HOT_PATHS.get(engine)
    if hot is None:
        hot = _HOT_PATHS[engine] = HotPath(engine.dialect)
    return hot


def warm_up(engine: Engine) -> None:
    """Compile the worker's statements and open a pooled connection, before the first claim."""
    hot_path_for(engine)
    engine.raw_connection().close()


def run_options(engine: Engine, run_id: int) -> RunOptions:
    """A run's training/execution/design/reconstruction dicts; cached, as a run's options
    never change."""
    cache = _RUN_OPTIONS_CACHE.setdefault(engine, {})
    options = cache.get(run_id)
    if options is None:
        with engine.connect() as conn:
            row = conn.execute(_RUN_OPTIONS, {"b_run": run_id}).one()
        options = (
            row.training or {},
            row.execution or {},
            row.design or {},
            row.reconstruction or {},
        )
        if len(cache) >= _RUN_OPTIONS_CACHE_SIZE:
            cache.clear()
        cache[run_id] = options
    return options
