"""A job's artifacts by name: the files training leaves in the job's artifact dir.

Only named artifacts are served, each at a fixed place under the artifact dir, so no client
string ever becomes a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import Session

from app.crud import NotFound
from app.models import Job

# name → (path under the job's artifact dir, media type)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "reconstruction.png": ("reconstruction.png", "image/png"),
    "result.json": ("result.json", "application/json"),
    "metrics.csv": ("logs/csv/metrics.csv", "text/csv"),
    "train.log": ("train.log", "text/plain"),
}
_EPOCH_LINE = re.compile(r"^\S+ epoch (\d+)/(\d+) ?(.*?)( \(stopped early\))?$")


class ArtifactNotFound(NotFound):
    """A name that is no artifact, or an artifact the job has not written (yet): a 404."""

    def __init__(self, job_id: int, message: str) -> None:
        self.kind = "artifact"
        self.item_id = job_id
        LookupError.__init__(self, message)


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
    path: Path
    media_type: str


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def find_artifact(*, session: Session, job_id: int, name: str) -> Artifact:
    """The file of a job's artifact; ArtifactNotFound for unknown names and missing files."""
    job = _job(session, job_id)
    if name not in ARTIFACTS:
        known = ", ".join(ARTIFACTS)
        raise ArtifactNotFound(job_id, f"no artifact named {name!r}; artifacts: {known}")
    relative, media_type = ARTIFACTS[name]
    path = Path(job.log_path) if name == "train.log" else Path(job.artifact_dir) / relative
    if not path.is_file():
        raise ArtifactNotFound(job_id, f"job {job_id} has no {name} (yet)")
    return Artifact(path=path, media_type=media_type)


def list_artifacts(*, session: Session, job_id: int) -> ArtifactsPublic:
    """The artifacts the job has written so far."""
    _job(session, job_id)
    found = []
    for name, (_, media_type) in ARTIFACTS.items():
        try:
            artifact = find_artifact(session=session, job_id=job_id, name=name)
        except ArtifactNotFound:
            continue
        size = artifact.path.stat().st_size
        url = f"/jobs/{job_id}/artifacts/{name}"
        found.append(ArtifactPublic(name=name, media_type=media_type, size_bytes=size, url=url))
    return ArtifactsPublic(data=found, count=len(found))


def read_job_history(*, session: Session, job_id: int) -> JobHistory:
    """Per-epoch losses from train.log's `epoch i/n key=value …` lines, latest attempt only."""
    job = _job(session, job_id)
    points: list[EpochPoint] = []
    total: int | None = None
    path = Path(job.log_path)
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        match = _EPOCH_LINE.match(line)
        if match is None:
            continue
        epoch, total = int(match[1]), int(match[2])
        if points and epoch <= points[-1].epoch:
            points = []  # a retry starts over; train.log keeps every attempt
        points.append(EpochPoint(epoch=epoch, complete=not match[4], losses=_losses(match[3])))
    return JobHistory(job_id=job_id, epochs_total=total, data=points)


def _losses(text: str) -> dict[str, float]:
    losses = {}
    for pair in text.split():
        key, _, value = pair.partition("=")
        try:
            losses[key] = float(value)
        except ValueError:
            continue
    return losses
