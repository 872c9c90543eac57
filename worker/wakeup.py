"""How an idle worker waits for work without taking the write lock on every poll."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import Engine

from worker.signals import StopSignal


class ChangeWatch:
    """Waits until the database may hold new work, the poll interval passed, or a stop.

    On SQLite, `PRAGMA data_version` on a private connection changes whenever another
    connection commits; reading it takes no lock, so an idle worker can look every few
    milliseconds and claim (which takes the write lock) only after something changed.
    Other databases fall back to plain polling.
    """

    def __init__(self, engine: Engine) -> None:
        self._conn: sqlite3.Connection | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._conn = sqlite3.connect(
                url.database, isolation_level=None, check_same_thread=False
            )
            self._version = self._data_version()

    def wait(self, poll_s: float, check_s: float, stop: StopSignal) -> None:
        deadline = time.monotonic() + poll_s
        while not stop.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._conn is None:
                stop.event.wait(remaining)
                return
            stop.event.wait(min(check_s, remaining))
            if self._changed():
                return

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _changed(self) -> bool:
        version = self._data_version()
        changed, self._version = version != self._version, version
        return changed

    def _data_version(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
