"""What a worker writes besides job state: manifests, and lines in a job's train.log."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session

from app.manifest import write_manifest
from app.paths import open_file

logger = logging.getLogger(__name__)

_READ_BUSY_TIMEOUT_MS = 30_000


class ManifestWriter:
    """Rewrites a run's manifest after its jobs end, spaced out so that it stays cheap.

    Writes of one run are at least `interval_s` apart, and at least ten times the last
    write's duration (a big run's manifest takes a while to build, and a worker should
    spend its time on jobs). A write that comes too soon is deferred, not dropped:
    `flush()` catches up once the spacing has passed and `flush(force=True)` (idle
    worker, shutdown) writes everything. A failed write is logged and never touches the
    job's recorded status.
    """

    _COST_FACTOR = 10.0

    def __init__(self, engine: Engine, interval_s: float) -> None:
        self._engine = read_engine(engine)
        self._own_engine = self._engine is not engine
        self._interval_s = interval_s
        self._pending: set[int] = set()
        self._next_at: dict[int, float] = {}

    def job_ended(self, run_id: int) -> None:
        self._pending.add(run_id)
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        for run_id in sorted(self._pending):
            if force or time.monotonic() >= self._next_at.get(run_id, float("-inf")):
                self._pending.discard(run_id)
                started = time.monotonic()
                self._write(run_id)
                cost_s = time.monotonic() - started
                self._next_at[run_id] = started + max(self._interval_s, self._COST_FACTOR * cost_s)

    def close(self) -> None:
        self.flush(force=True)
        if self._own_engine:
            self._engine.dispose()

    def _write(self, run_id: int) -> None:
        try:
            with Session(self._engine) as session:
                write_manifest(session=session, run_id=run_id)
        except Exception:
            logger.exception("could not write the run's manifest", extra={"run_id": run_id})


def read_engine(engine: Engine) -> Engine:
    """An engine for reads that take no write lock: SQLite gets deferred transactions.

    The project's SQLite engine starts every transaction with BEGIN IMMEDIATE, which is
    right for writes; a manifest only reads, and in WAL mode a deferred transaction reads
    one consistent snapshot while other workers keep claiming and committing.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return engine
    reader = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(reader, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is issued below
        dbapi_conn.execute(f"PRAGMA busy_timeout={_READ_BUSY_TIMEOUT_MS}")

    @event.listens_for(reader, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return reader


def append_log(path: str | Path, message: str) -> None:
    """Add a timestamped line to a job's train.log (the format training uses).

    Stored paths are real paths, so the log is reached without following any symlink
    (`app.paths`): a link planted or swapped in is refused (logged), never written through.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_file(Path(path), flags=flags, create_dirs=True)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
    except OSError:
        logger.warning("could not append to %s", path, exc_info=True)
