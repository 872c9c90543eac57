"""Run a job in a child process forked from a warm fork server, and watch it.

The fork server imports the heavy modules (torch, Lightning, the training code) once; each
job's child is a fork of it, so it starts in milliseconds instead of re-importing torch.
The child reports progress and its result through a pipe and reads stop requests from it;
a crash (signal, exit code, exception) becomes a failed outcome with the cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from app.queue import ClaimedJob, Progress
from worker.executors.base import Execution, Outcome, ProgressReporter, is_final

logger = logging.getLogger(__name__)

JobTarget = Callable[[ClaimedJob, ProgressReporter], dict[str, Any]]
_PR_SET_PDEATHSIG = 1
_TRACEBACK_CHARS = 6_000
_CAUSE_CHARS = 1_500  # with the traceback, inside the queue's ERROR_MAX_CHARS


def die_with_parent(signum: int) -> None:
    """Ask Linux to send `signum` to this process when its parent exits (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable")


class PipeReporter:
    """The child's reporter: progress goes up the pipe (throttled), stop requests come down."""

    def __init__(self, conn: Connection, interval_s: float = 0.1) -> None:
        self._conn = conn
        self._interval_s = interval_s
        self._last_sent = float("-inf")
        self._stop = False

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        now = time.monotonic()
        if now - self._last_sent < self._interval_s:
            return
        self._last_sent = now
        self._conn.send(("progress", int(epoch), int(epochs), int(step), float(loss)))

    def should_stop(self) -> bool:
        try:
            while not self._stop and self._conn.poll():
                self._stop = self._conn.recv() == "stop"
        except (EOFError, OSError):
            self._stop = True  # the worker is gone: nobody wants this result any more
        return self._stop


def _child_main(target: JobTarget, job: ClaimedJob, conn: Connection) -> None:
    # Own process group: a terminal's Ctrl-C reaches the worker, which decides; and the
    # worker can kill the whole group (data loader processes included).
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL)  # parent = fork server, which exits with its worker
    try:
        conn.send(("result", target(job, PipeReporter(conn))))
    except BaseException as exc:
        conn.send(("error", describe_exception(exc), is_final(exc)))
        sys.exit(1)


def describe_exception(exc: BaseException) -> str:
    """`Type: message` (the cause), then the traceback's last frames.

    Source files are named relative to their import root (`worker/training/runner.py`,
    `lightning/...`): a job's error is shown by the API, which names no server paths.
    """
    cause = f"{type(exc).__name__}: {exc}"[:_CAUSE_CHARS]
    # Long messages are cut inside the traceback too, so its tail keeps the frames.
    lines = traceback.TracebackException.from_exception(exc).format()
    trace = "".join(
        line if len(line) < _CAUSE_CHARS else line[:_CAUSE_CHARS] + "…\n" for line in lines
    )
    return f"{cause}\n\n{short_source_paths(trace)[-_TRACEBACK_CHARS:]}"


def short_source_paths(trace: str) -> str:
    """A traceback whose `File "..."` lines name files relative to their sys.path entry."""
    roots = sorted({p for p in sys.path if os.path.isabs(p)}, key=len, reverse=True)
    for root in roots:
        trace = trace.replace(f'File "{root.rstrip("/")}/', 'File "')
    return trace


def _warm_up() -> None:
    """Runs in a first child: returns once the fork server has imported its preloads."""


class ChildExecution:
    """One job's child process, seen from the worker."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self._process = process
        self._conn: Connection | None = conn
        self._progress: Progress | None = None
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._final = False
        self._outcome: Outcome | None = None

    def wait(self, timeout_s: float) -> Outcome | None:
        """Wait up to `timeout_s` for a message or the child's exit; the outcome once it ended."""
        if self._outcome is not None:
            return self._outcome
        waitables: list[Any] = [self._process.sentinel]
        if self._conn is not None:
            waitables.append(self._conn)
        ready = wait(waitables, max(timeout_s, 0.0))
        self._drain()
        if self._process.sentinel in ready:
            self._process.join()
            self._drain()
            self._outcome = self._conclude(self._process.exitcode)
            self._close_pipe()
        return self._outcome

    def take_progress(self) -> Progress | None:
        progress, self._progress = self._progress, None
        return progress

    def request_stop(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(OSError):  # the child already ended; wait() reports how
            self._conn.send("stop")

    def kill(self) -> None:
        """SIGKILL the child and its process group; returns once the child is reaped."""
        pid = self._process.pid
        if pid is not None:
            # The group outlives its leader while anything it started (data loaders) lives.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            if self._process.is_alive():
                self._process.kill()  # it had not yet made its own group
            self._process.join(timeout=10)
        self._close_pipe()

    def _drain(self) -> None:
        conn = self._conn
        try:
            while conn is not None and conn.poll():
                self._take(conn.recv())
        except (EOFError, OSError):
            self._close_pipe()

    def _take(self, message: Any) -> None:
        kind = message[0]
        if kind == "progress":
            _, epoch, epochs, step, loss = message
            self._progress = Progress(epoch=epoch, epochs=epochs, step=step, loss=loss)
        elif kind == "result":
            self._result = message[1]
        elif kind == "error":
            self._error, self._final = message[1], bool(message[2])

    def _conclude(self, exitcode: int | None) -> Outcome:
        # A result counts even if the interpreter then died on its way out.
        if self._result is not None:
            stopped = self._result.get("status") == "stopped"
            return Outcome("stopped" if stopped else "succeeded", result=self._result)
        if self._error is not None:
            return Outcome("failed", error=self._error, final=self._final)
        return Outcome("failed", error=describe_exit(exitcode))

    def _close_pipe(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def describe_exit(exitcode: int | None) -> str:
    """Why a child that sent no result ended: its signal or exit code."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        return f"training process killed by {name}{hint}"
    return f"training process exited with code {exitcode} without a result"


class ChildProcessExecutor:
    """Runs `target(job, reporter)` in a fork-server child per job."""

    def __init__(self, target: JobTarget, *, preload: Sequence[str] = ()) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([*preload, __name__])
        self._target = target
        started = time.monotonic()
        warm = self._context.Process(target=_warm_up, name="warm-up")
        warm.start()
        warm.join()
        logger.info(
            "fork server ready in %.1f s (preloaded %s)", time.monotonic() - started, preload
        )

    def start(self, job: ClaimedJob) -> Execution:
        """Fork the job's child; the returned execution watches it."""
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child_main, args=(self._target, job, child_conn), name=f"job-{job.job_id}"
        )
        process.start()
        child_conn.close()  # the child holds its own copy; EOF then means it is gone
        return ChildExecution(process, parent_conn)

    def close(self) -> None:
        """Nothing to release: the fork server exits with this process."""
