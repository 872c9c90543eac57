"""Progress through files, for a trainer the worker cannot reach by pipe (a SLURM job, a Ray task).

The trainer rewrites a small JSON file with its latest progress and stops at its next step
once a stop file exists or it receives SIGTERM (what `scancel` and preemption send first);
the worker reads the progress file and creates the stop file. Both lie in the attempt's
folder on the file system the cluster shares with the worker.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from app.core.files import write_json_atomic


@dataclass(frozen=True)
class FileProgress:
    """One progress report as the file holds it (epoch from 1, of `epochs`)."""

    epoch: int
    epochs: int
    step: int
    loss: float


class FileReporter:
    """A `ProgressReporter` writing `progress_path` and watching `stop_path` (either optional)."""

    def __init__(
        self, progress_path: Path | None, stop_path: Path | None = None, *, interval_s: float = 0.5
    ) -> None:
        self.progress_path = progress_path
        self.stop_path = stop_path
        self.interval_s = interval_s
        self.interrupted = False
        self._last_write = -math.inf
        self._last_look = -math.inf

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        now = time.monotonic()
        if self.progress_path is None or now - self._last_write < self.interval_s:
            return
        self._last_write = now
        # JSON has no NaN: a diverged loss is written as null and read back as NaN.
        finite = float(loss) if math.isfinite(loss) else None
        report = {"epoch": int(epoch), "epochs": int(epochs), "step": int(step), "loss": finite}
        write_json_atomic(self.progress_path, report)

    def should_stop(self) -> bool:
        if self.interrupted or self.stop_path is None:
            return self.interrupted
        now = time.monotonic()
        if now - self._last_look >= self.interval_s:  # a stat per step is slow on NFS
            self._last_look = now
            self.interrupted = self.stop_path.exists()
        return self.interrupted

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: stop at the next step (SLURM sends SIGTERM before SIGKILL)."""
        self.interrupted = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.interrupt)


def read_progress_file(path: Path) -> FileProgress | None:
    """The latest report in `path`; None while there is none (or it cannot be read yet)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        loss = report["loss"]
        return FileProgress(
            epoch=int(report["epoch"]),
            epochs=int(report["epochs"]),
            step=int(report["step"]),
            loss=math.nan if loss is None else float(loss),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
