"""What the worker sees of a running job: its outcome, progress, stop and kill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.queue import Progress


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: `stopped` means training honoured a stop request."""

    status: Literal["succeeded", "stopped", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


class ProgressReporter(Protocol):
    """Training's view of the worker (the same shape as `worker.training.ProgressReporter`)."""

    def on_progress(self, *, epoch: int, step: int, loss: float) -> None: ...

    def should_stop(self) -> bool: ...


class Execution(Protocol):
    """One attempt in flight, wherever it runs (a child process today, a Ray task later)."""

    def wait(self, timeout_s: float) -> Outcome | None:
        """Block up to `timeout_s`; the outcome once the attempt ended, else None."""
        ...

    def take_progress(self) -> Progress | None:
        """The latest progress not yet taken, if any."""
        ...

    def request_stop(self) -> None:
        """Ask training to stop at its next step."""
        ...

    def kill(self) -> None:
        """End the attempt now; a no-op once it ended."""
        ...
