"""What a worker writes besides job state: manifests, and lines in a job's train.log."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from sqlalchemy import Engine

from app.core.files import log_timestamp
from app.manifest import retry_stale_manifests, sync_manifest
from app.paths import open_file

logger = logging.getLogger(__name__)


class ManifestWriter:
    """Rewrites a run's manifest after its jobs end, spaced out so that it stays cheap.

    Writes of one run are at least `interval_s` apart, and at least ten times the last
    write's duration (a big run's manifest takes a while to build, and a worker should
    spend its time on jobs). A write that comes too soon is deferred, not dropped:
    `flush()` catches up once the spacing has passed and `flush(force=True)` (idle
    worker, shutdown) writes everything. Writes are confined to `data_root`. A failed
    write is logged and recorded as owed (`Run.manifest_stale`), never touching the job's
    recorded status; `retry_owed` (each reaper sweep) writes the owed ones again.
    """

    _COST_FACTOR = 10.0

    def __init__(self, engine: Engine, interval_s: float, data_root: Path | None = None) -> None:
        self._engine = engine
        self._data_root = data_root
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

    def retry_owed(self) -> None:
        try:
            retry_stale_manifests(self._engine, self._data_root)
        except Exception:
            logger.exception("could not retry the owed manifests")

    def close(self) -> None:
        self.flush(force=True)

    def _write(self, run_id: int) -> None:
        try:
            sync_manifest(self._engine, run_id, self._data_root)
        except Exception:
            logger.exception("could not write the run's manifest", extra={"run_id": run_id})


def append_log(path: str | Path, message: str) -> None:
    """Add a timestamped line to a job's train.log (the format training uses).

    Stored paths are real paths, so the log is reached without following any symlink
    (`app.paths`): a link planted or swapped in is refused (logged), never written through.
    """
    stamp = log_timestamp()
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_file(Path(path), flags=flags, create_dirs=True)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
    except OSError:
        logger.warning("could not append to %s", path, exc_info=True)
