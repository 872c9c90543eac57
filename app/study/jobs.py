"""Phase E enumeration (study.md §6): the training jobs of a design, and skip events.

`SkipCode` and `SkipSpec` (app.study.skips) are part of what enumeration hands back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from app.study.design import GRIDSIZE, MAX_DOSE, StudyDesign, View, dose_dirname
from app.study.layouts import DataLayout, missing_files, phase_c_layout, phase_d_layouts
from app.study.skips import OVERLAP_MANIFEST, Rejections, SkipCode, SkipSpec, skip_event

logger = logging.getLogger(__name__)

__all__ = [
    "Enumeration",
    "Filters",
    "JobSpec",
    "MissingDataError",
    "SkipCode",
    "SkipSpec",
    "enumerate_jobs",
    "write_dry_run_logs",
]

LOG_NAME = "train.log"


JobKind = Literal["train", "reconstruct"]


class Filters(BaseModel):
    """Narrow a design to one dose, one view, one gridsize, one kind of job and/or one split
    (None keeps everything). `split` selects reconstructions only: a training job uses both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dose: float | None = Field(
        None, gt=0, le=MAX_DOSE, allow_inf_nan=False, description="e.g. 1000"
    )
    view: View | None = None
    gridsize: Literal[1, 2] | None = None
    kind: JobKind | None = Field(None, description="train or reconstruct")
    split: Literal["train", "test"] | None = Field(None, description="of reconstructions")

    def selects_kind(self, kind: str) -> bool:
        return self.kind is None or self.kind == kind

    def selects_split(self, split: str) -> bool:
        return self.split is None or self.split == split

    def selects_dose(self, dose: float) -> bool:
        return self.dose is None or math.isclose(dose, self.dose, rel_tol=1e-9)

    def selects_view(self, view: str) -> bool:
        if self.view is not None and view != self.view:
            return False
        return self.gridsize is None or GRIDSIZE[view] == self.gridsize


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One training job; every path is absolute."""

    dose: float
    view: str
    gridsize: int
    train_data_path: Path
    test_data_path: Path
    log_path: Path
    artifact_dir: Path
    kind: str = "train"
    engine: str | None = None  # a reconstruction's pty-chi engine
    split: str | None = None  # the split a reconstruction reconstructs

    def to_record(self) -> dict[str, Any]:
        """The job's fields with paths as strings (the columns of `Job`)."""
        return {
            "kind": self.kind,
            "engine": self.engine,
            "split": self.split,
            "dose": self.dose,
            "view": self.view,
            "gridsize": self.gridsize,
            "train_data_path": str(self.train_data_path),
            "test_data_path": str(self.test_data_path),
            "log_path": str(self.log_path),
            "artifact_dir": str(self.artifact_dir),
        }


@dataclass(frozen=True, slots=True)
class Enumeration:
    jobs: list[JobSpec]
    skips: list[SkipSpec]

    def placed_under(self, artifact_root: Path) -> Enumeration:
        """The same jobs with their artifact folders and logs under `artifact_root`."""
        root = Path(artifact_root).resolve()
        jobs = [_placed(job, _job_dir(root, job)) for job in self.jobs]
        return Enumeration(jobs=jobs, skips=self.skips)


class MissingDataError(Exception):
    """Required data files are absent; the message names every one of them."""

    def __init__(self, missing: Sequence[Path]) -> None:
        self.missing = list(missing)
        names = ", ".join(str(path) for path in self.missing)
        super().__init__(f"{len(self.missing)} required data file(s) not found: {names}")


def enumerate_jobs(
    *,
    design: StudyDesign,
    phase_c_root: Path,
    phase_d_root: Path,
    artifact_root: Path,
    filters: Filters,
    strict: bool,
    reconstruction: Reconstructions | None = None,
) -> Enumeration:
    """The jobs and skip events of a design, per dose ascending, then baseline, dense, sparse;
    per view its training job, then its reconstructions (engine × split) when asked.

    Raises MissingDataError for missing Phase C files, and for missing Phase D files when
    `strict`; otherwise a view without Phase D data becomes a skip event, which stands for
    its training job and its reconstructions alike.
    """
    c_root, d_root = Path(phase_c_root).resolve(), Path(phase_d_root).resolve()
    a_root = Path(artifact_root).resolve()
    doses = [dose for dose in design.doses if filters.selects_dose(dose)]
    views = [view for view in design.views if filters.selects_view(view)]
    rejections = Rejections(d_root / OVERLAP_MANIFEST)
    jobs: list[JobSpec] = []
    skips: list[SkipSpec] = []
    missing_c: list[Path] = []
    missing_d: list[Path] = []
    for dose in doses:
        for view in views:
            if view == "baseline":
                layout = phase_c_layout(c_root, dose)
                missing_c.extend(missing_files(layout))
                jobs += _view_jobs(dose, view, layout, a_root, filters, reconstruction)
                continue
            candidates = phase_d_layouts(d_root, dose, view)
            found = next((c for c in candidates if not missing_files(c)), None)
            if found is not None:
                jobs += _view_jobs(dose, view, found, a_root, filters, reconstruction)
            else:
                missing_d.extend(p for c in candidates for p in missing_files(c))
                skips.append(skip_event(dose, view, candidates, rejections, root=d_root))
    if missing_c or (strict and missing_d):
        raise MissingDataError(missing_c + missing_d if strict else missing_c)
    return Enumeration(jobs=jobs, skips=skips)


def write_dry_run_logs(
    jobs: Iterable[JobSpec], *, opener: Callable[[Path], IO[str]] | None = None
) -> None:
    """Append the `DRY RUN: <view> dose=<dose> gridsize=<gs>` line to each job's train.log.

    `opener` opens a log for appending (the service's opens it confined to the data root).
    """
    for job in jobs:
        log: IO[str]
        if opener is None:
            job.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = job.log_path.open("a", encoding="utf-8")
        else:
            log = opener(job.log_path)
        with log:
            if job.kind == "reconstruct":
                log.write(
                    f"DRY RUN: reconstruct {job.view} dose={job.dose} "
                    f"engine={job.engine} split={job.split}\n"
                )
            else:
                log.write(f"DRY RUN: {job.view} dose={job.dose} gridsize={job.gridsize}\n")


class Reconstructions(Protocol):
    """What enumeration needs of the run's reconstruction options."""

    @property
    def engines(self) -> Sequence[str]: ...

    @property
    def splits(self) -> Sequence[str]: ...


RECONSTRUCTION_DIR = "ptychi"


def _view_jobs(
    dose: float,
    view: str,
    layout: DataLayout,
    artifact_root: Path,
    filters: Filters,
    reconstruction: Reconstructions | None,
) -> list[JobSpec]:
    """A view's training job, then one reconstruction per engine and split, as filtered."""
    jobs = [_job(dose, view, layout, artifact_root)] if filters.selects_kind("train") else []
    if reconstruction is None or not filters.selects_kind("reconstruct"):
        return jobs
    for engine in reconstruction.engines:
        for split in reconstruction.splits:
            if filters.selects_split(split):
                spec = replace(_job(dose, view, layout, artifact_root), kind="reconstruct")
                spec = replace(spec, engine=engine, split=split)
                jobs.append(_placed(spec, _job_dir(artifact_root, spec)))
    return jobs


def _artifact_dir(artifact_root: Path, dose: float, view: str) -> Path:
    return artifact_root / dose_dirname(dose) / view / f"gs{GRIDSIZE[view]}"


def _job_dir(artifact_root: Path, job: JobSpec) -> Path:
    """gs<k>/ for a training job; ptychi/<engine>_<split>/ for a reconstruction."""
    if job.kind == "reconstruct":
        folder = f"{job.engine}_{job.split}"
        return artifact_root / dose_dirname(job.dose) / job.view / RECONSTRUCTION_DIR / folder
    return _artifact_dir(artifact_root, job.dose, job.view)


def _job(dose: float, view: str, layout: DataLayout, artifact_root: Path) -> JobSpec:
    artifact_dir = _artifact_dir(artifact_root, dose, view)
    return JobSpec(
        dose=float(dose),
        view=view,
        gridsize=GRIDSIZE[view],
        train_data_path=layout.train,
        test_data_path=layout.test,
        log_path=artifact_dir / LOG_NAME,
        artifact_dir=artifact_dir,
    )


def _placed(job: JobSpec, artifact_dir: Path) -> JobSpec:
    return replace(job, artifact_dir=artifact_dir, log_path=artifact_dir / LOG_NAME)
