"""Server-sent events of a run: a snapshot, then job and run changes, then `end`.

The stream polls a cheap fingerprint of the run's job rows (count, newest `updated_at`:
every status change and every heartbeat with progress moves it) and reads the run's live
state only when it moved. Events:

- `snapshot`: the whole `RunLive`, first;
- `job`: one `JobLive` whose status, epoch, step, loss, result or error changed;
- `run`: status, counts and ETA after any change;
- `end`: the run's final status and counts, once it is terminal; the stream then closes.

A comment line goes out every `ping_s` so that proxies keep the connection open.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine
from sqlmodel import Session

from app.progress import JobLive, RunLive, read_run_change_key, read_run_live

# Fields that change with the clock alone: they ride along, but do not make a job event.
_CLOCK_FIELDS = frozenset({"elapsed_s", "eta_s"})


Key = tuple[Any, ...]


def read_live(engine: Engine, run_id: int) -> tuple[Key, RunLive]:
    """The run's change key and live state from one snapshot; RunNotFound for an unknown id."""
    with Session(engine) as session:
        key = read_run_change_key(session=session, run_id=run_id)
        return key, read_run_live(session=session, run_id=run_id)


def _read_key(engine: Engine, run_id: int) -> Key:
    with Session(engine) as session:
        return read_run_change_key(session=session, run_id=run_id)


def format_event(kind: str, data: Any, event_id: int) -> str:
    """One SSE message: id, event name and a single JSON data line."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"id: {event_id}\nevent: {kind}\ndata: {payload}\n\n"


def _run_summary(live: RunLive) -> dict[str, Any]:
    keys = {"id", "status", "terminal", "counts", "job_count", "skipped_count", "eta_s"}
    return live.model_dump(mode="json", include=keys | {"mean_job_s"})


def _without_clock(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key not in ("eta_s", "mean_job_s")}


def _job_state(job: JobLive) -> dict[str, Any]:
    return job.model_dump(mode="json", exclude=set(_CLOCK_FIELDS) | {"updated_at"})


class RunEventStream:
    """Turns successive live states of one run into SSE messages."""

    def __init__(self, first: RunLive) -> None:
        self.event_id = 0
        self.jobs = {job.id: _job_state(job) for job in first.jobs}
        self.run = _run_summary(first)

    def _next(self, kind: str, data: Any) -> str:
        self.event_id += 1
        return format_event(kind, data, self.event_id)

    def snapshot(self, live: RunLive) -> list[str]:
        messages = [self._next("snapshot", live.model_dump(mode="json"))]
        return messages + self._end(live)

    def update(self, live: RunLive) -> list[str]:
        """Messages for what changed since the last state (job events first)."""
        messages = []
        for job in live.jobs:
            state = _job_state(job)
            if self.jobs.get(job.id) != state:
                self.jobs[job.id] = state
                messages.append(self._next("job", job.model_dump(mode="json")))
        run = _run_summary(live)
        # A new ETA alone (each heartbeat moves it) rides on the next change, not an event.
        if messages or _without_clock(run) != _without_clock(self.run):
            self.run = run
            messages.append(self._next("run", run))
        return messages + self._end(live)

    def _end(self, live: RunLive) -> list[str]:
        if not live.terminal:
            return []
        return [self._next("end", _run_summary(live))]


async def run_events(
    engine: Engine,
    start: tuple[Key, RunLive],
    *,
    poll_s: float,
    ping_s: float,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[str]:
    """The SSE stream of a run from its `start` (`read_live`), until the run is terminal.

    `disconnected` is asked before every poll, so a stream whose client left stops reading
    the database at once instead of at its next write.
    """
    key, first = start
    stream = RunEventStream(first)
    yield "retry: 2000\n\n"
    for message in stream.snapshot(first):
        yield message
    if first.terminal:
        return
    last_sent = time.monotonic()
    while True:
        await anyio.sleep(poll_s)
        if disconnected is not None and await disconnected():
            return
        current = await anyio.to_thread.run_sync(_read_key, engine, first.id)
        if current != key:
            key, live = await anyio.to_thread.run_sync(read_live, engine, first.id)
            for message in stream.update(live):
                yield message
                last_sent = time.monotonic()
            if live.terminal:
                return
        elif time.monotonic() - last_sent >= ping_s:
            yield ": ping\n\n"
            last_sent = time.monotonic()
