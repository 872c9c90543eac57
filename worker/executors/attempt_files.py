"""What a cluster attempt and its worker share: a folder per attempt inside the job's folder.

A SLURM job or a Ray task runs on another machine, so it cannot use the fork server's pipe:
the worker writes the job's `TrainConfig` (a reconstruction's `ReconstructConfig`) to
`config.json`, the job's process keeps its latest
progress in `progress.json`, and the worker creates `stop` to ask it to stop. The folder
lies under the run's artifact root, which the cluster's nodes and the worker share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.files import write_json_atomic
from app.queue import ClaimedJob, Progress
from worker.executors.training import CLUSTER_KEY
from worker.reconstruction import ReconstructConfig
from worker.training import TrainConfig
from worker.training.progress_file import read_progress_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptFiles:
    """`<artifact_dir>/<backend>/attempt-<n>/`: one attempt's shared files."""

    folder: Path

    @classmethod
    def for_job(cls, job: ClaimedJob, backend: str) -> AttemptFiles:
        return cls(Path(job.artifact_dir) / backend / f"attempt-{job.attempt}")

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def progress(self) -> Path:
        return self.folder / "progress.json"

    @property
    def stop(self) -> Path:
        return self.folder / "stop"

    def create(self, config: TrainConfig | ReconstructConfig) -> None:
        """Make the folder (a retry of the same attempt number starts it afresh) and config."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in (self.progress, self.stop):
            stale.unlink(missing_ok=True)
        write_json_atomic(self.config, config.to_dict())

    def request_stop(self) -> None:
        try:
            self.stop.touch()
        except OSError:
            logger.warning("could not create %s", self.stop, exc_info=True)


class ProgressWatch:
    """Reads the attempt's progress file; each new report once."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None

    def take(self) -> Progress | None:
        report = read_progress_file(self._path)
        if report is None or (report.epoch, report.step) == self._seen:
            return None
        self._seen = (report.epoch, report.step)
        return Progress(
            epoch=report.epoch, epochs=report.epochs, step=report.step, loss=report.loss
        )


def cluster_options(job: ClaimedJob) -> dict[str, Any]:
    """The run's per-job cluster resources (`execution.cluster`), unset ones left out."""
    options = job.execution.get(CLUSTER_KEY) or {}
    return {key: value for key, value in options.items() if value is not None}


def tail(path: Path, max_chars: int = 3_000) -> str:
    """The end of a text file (an attempt's output), or '' when it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(size - max_chars, 0))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
