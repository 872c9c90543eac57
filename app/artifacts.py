"""A job's artifacts by name: the files training leaves in the job's artifact dir.

Only named artifacts are served, each at a fixed place under the artifact dir, so no client
string ever becomes a path; and each is opened confined to the data root (`app.paths`), so
a symlink planted in the job's folders is refused rather than followed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import BaseModel
from sqlmodel import Session

from app.errors import NotFound
from app.models import Job
from app.paths import open_file

MAX_LOG_LINE = 64 << 10  # bytes: a train.log line longer than this is not an epoch line
MAX_EPOCH_POINTS = 10_000  # the epochs option's upper bound

# name → (path under the job's artifact dir, media type)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "reconstruction.png": ("reconstruction.png", "image/png"),
    "result.json": ("result.json", "application/json"),
    "metrics.csv": ("logs/csv/metrics.csv", "text/csv"),
    "train.log": ("train.log", "text/plain"),
}
_EPOCH_LINE = re.compile(r"^\S+ epoch (\d+)/(\d+) ?(.*?)( \(stopped early\))?$")


class ArtifactPublic(BaseModel):
    name: str
    media_type: str
    size_bytes: int
    url: str


class ArtifactsPublic(BaseModel):
    data: list[ArtifactPublic]
    count: int


class EpochPoint(BaseModel):
    epoch: int
    complete: bool
    losses: dict[str, float]


class JobHistory(BaseModel):
    """Per-epoch losses of the job's latest attempt, from its train.log."""

    job_id: int
    epochs_total: int | None
    data: list[EpochPoint]


@dataclass(frozen=True)
class Artifact:
    """An artifact's open file: read it, then close it (`chunks` does both)."""

    file: IO[bytes]
    media_type: str
    size_bytes: int

    def chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        """The file's bytes in pieces; closes the file at the end."""
        with self.file:
            while block := self.file.read(size):
                yield block


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def open_artifact(*, session: Session, job_id: int, name: str, data_root: Path) -> Artifact:
    """Open a job's artifact; NotFound for unknown names and files not written (yet)."""
    job = _job(session, job_id)
    if name not in ARTIFACTS:
        known = ", ".join(ARTIFACTS)
        raise NotFound("artifact", name, f"no artifact named {name[:64]!r}; artifacts: {known}")
    relative, media_type = ARTIFACTS[name]
    path = Path(job.log_path) if name == "train.log" else Path(job.artifact_dir) / relative
    try:
        handle = os.fdopen(open_file(path, root=data_root), "rb")
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound("artifact", name, f"job {job_id} has no {name} (yet)") from None
    return Artifact(
        file=handle, media_type=media_type, size_bytes=os.fstat(handle.fileno()).st_size
    )


def list_artifacts(*, session: Session, job_id: int, data_root: Path) -> ArtifactsPublic:
    """The artifacts the job has written so far."""
    _job(session, job_id)
    found = []
    for name, (_, media_type) in ARTIFACTS.items():
        try:
            artifact = open_artifact(session=session, job_id=job_id, name=name, data_root=data_root)
        except NotFound:
            continue
        artifact.file.close()
        url = f"/jobs/{job_id}/artifacts/{name}"
        size = artifact.size_bytes
        found.append(ArtifactPublic(name=name, media_type=media_type, size_bytes=size, url=url))
    return ArtifactsPublic(data=found, count=len(found))


def read_job_history(*, session: Session, job_id: int, data_root: Path) -> JobHistory:
    """Per-epoch losses from train.log's `epoch i/n key=value …` lines, latest attempt only.

    The log is read a line at a time, and a line longer than MAX_LOG_LINE is skipped
    unread, so memory stays bounded however large the log grows; at most MAX_EPOCH_POINTS
    epochs (the epochs limit) are kept.
    """
    job = _job(session, job_id)
    points: list[EpochPoint] = []
    total: int | None = None
    try:
        log = os.fdopen(open_file(Path(job.log_path), root=data_root), "rb")
    except (FileNotFoundError, NotADirectoryError):
        return JobHistory(job_id=job_id, epochs_total=None, data=[])
    with log:
        for line in bounded_lines(log, MAX_LOG_LINE):
            match = _EPOCH_LINE.match(line.decode("utf-8", errors="replace"))
            if match is None:
                continue
            epoch, total = int(match[1]), int(match[2])
            if points and epoch <= points[-1].epoch:
                points = []  # a retry starts over; train.log keeps every attempt
            point = EpochPoint(epoch=epoch, complete=not match[4], losses=_losses(match[3]))
            points.append(point)
            if len(points) > MAX_EPOCH_POINTS:
                del points[0]
    return JobHistory(job_id=job_id, epochs_total=total, data=points)


def bounded_lines(file: IO[bytes], limit: int) -> Iterator[bytes]:
    """The file's lines without their newline; a line over `limit` bytes is skipped."""
    while True:
        line = file.readline(limit + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            yield line.rstrip(b"\r\n")
            continue
        if len(line) <= limit:
            yield line  # the last line, without a newline
            return
        while line and not line.endswith(b"\n"):  # skip the rest of an overlong line
            line = file.readline(1 << 16)


def _losses(text: str) -> dict[str, float]:
    losses = {}
    for pair in text.split():
        key, _, value = pair.partition("=")
        try:
            losses[key] = float(value)
        except ValueError:
            continue
    return losses
