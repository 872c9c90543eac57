"""Phase E enumeration (study.md §6): the training jobs of a design, and skip events."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.paths import open_binary
from app.study.design import GRIDSIZE, MAX_DOSE, StudyDesign, View, dose_dirname

logger = logging.getLogger(__name__)

OVERLAP_MANIFEST = "overlap_manifest.json"
LOG_NAME = "train.log"


class Filters(BaseModel):
    """Narrow a design to one dose, one view and/or one gridsize (None keeps everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dose: float | None = Field(
        None, gt=0, le=MAX_DOSE, allow_inf_nan=False, description="e.g. 1000"
    )
    view: View | None = None
    gridsize: Literal[1, 2] | None = None

    def selects_dose(self, dose: float) -> bool:
        return self.dose is None or math.isclose(dose, self.dose, rel_tol=1e-9)

    def selects_view(self, view: str) -> bool:
        if self.view is not None and view != self.view:
            return False
        return self.gridsize is None or GRIDSIZE[view] == self.gridsize


class SkipCode(StrEnum):
    view_rejected = "view_rejected"  # Phase D recorded a rejection for this dose and view
    data_missing = "data_missing"  # no rejection on record: the files are simply absent


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

    def to_record(self) -> dict[str, Any]:
        """The job's fields with paths as strings (the columns of `Job`)."""
        return {
            "dose": self.dose,
            "view": self.view,
            "gridsize": self.gridsize,
            "train_data_path": str(self.train_data_path),
            "test_data_path": str(self.test_data_path),
            "log_path": str(self.log_path),
            "artifact_dir": str(self.artifact_dir),
        }


@dataclass(frozen=True, slots=True)
class SkipSpec:
    """A view left out because its Phase D data is missing (a skip event)."""

    dose: float
    view: str
    reason: str
    code: SkipCode
    train_exists: bool
    test_exists: bool
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_record(self) -> dict[str, Any]:
        """The skip event's fields, JSON-ready (the columns of `SkipEvent`)."""
        return {
            "dose": self.dose,
            "view": self.view,
            "reason": self.reason,
            "code": self.code.value,
            "train_exists": self.train_exists,
            "test_exists": self.test_exists,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Enumeration:
    jobs: list[JobSpec]
    skips: list[SkipSpec]

    def placed_under(self, artifact_root: Path) -> Enumeration:
        """The same jobs with their artifact folders and logs under `artifact_root`."""
        root = Path(artifact_root).resolve()
        jobs = [_placed(job, _artifact_dir(root, job.dose, job.view)) for job in self.jobs]
        return Enumeration(jobs=jobs, skips=self.skips)


class MissingDataError(Exception):
    """Required data files are absent; the message names every one of them."""

    def __init__(self, missing: Sequence[Path]) -> None:
        self.missing = list(missing)
        names = ", ".join(str(path) for path in self.missing)
        super().__init__(f"{len(self.missing)} required data file(s) not found: {names}")


@dataclass(frozen=True, slots=True)
class DataLayout:
    """Where one layout keeps a view's two split files."""

    name: str
    train: Path
    test: Path


def phase_c_layout(phase_c_root: Path, dose: float) -> DataLayout:
    """Phase C's split files of a dose."""
    directory = phase_c_root / dose_dirname(dose)
    return DataLayout("phase_c", directory / "patched_train.npz", directory / "patched_test.npz")


def phase_d_layouts(phase_d_root: Path, dose: float, view: str) -> tuple[DataLayout, DataLayout]:
    """The Phase D layouts of a view, in the order they are tried."""
    directory = phase_d_root / dose_dirname(dose) / view
    return (
        DataLayout("primary", directory / f"{view}_train.npz", directory / f"{view}_test.npz"),
        DataLayout("fallback", directory / "train.npz", directory / "test.npz"),
    )


def enumerate_jobs(
    *,
    design: StudyDesign,
    phase_c_root: Path,
    phase_d_root: Path,
    artifact_root: Path,
    filters: Filters,
    strict: bool,
) -> Enumeration:
    """The jobs and skip events of a design, per dose ascending, then baseline, dense, sparse.

    Raises MissingDataError for missing Phase C files, and for missing Phase D files when
    `strict`; otherwise a view without Phase D data becomes a skip event.
    """
    c_root, d_root = Path(phase_c_root).resolve(), Path(phase_d_root).resolve()
    a_root = Path(artifact_root).resolve()
    doses = [dose for dose in design.doses if filters.selects_dose(dose)]
    views = [view for view in design.views if filters.selects_view(view)]
    rejections = _Rejections(d_root / OVERLAP_MANIFEST)
    jobs: list[JobSpec] = []
    skips: list[SkipSpec] = []
    missing_c: list[Path] = []
    missing_d: list[Path] = []
    for dose in doses:
        for view in views:
            if view == "baseline":
                layout = phase_c_layout(c_root, dose)
                missing_c.extend(_missing_files(layout))
                jobs.append(_job(dose, view, layout, a_root))
                continue
            candidates = phase_d_layouts(d_root, dose, view)
            found = next((c for c in candidates if not _missing_files(c)), None)
            if found is not None:
                jobs.append(_job(dose, view, found, a_root))
            else:
                missing_d.extend(p for c in candidates for p in _missing_files(c))
                skips.append(_skip_event(dose, view, candidates, rejections))
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
            log.write(f"DRY RUN: {job.view} dose={job.dose} gridsize={job.gridsize}\n")


def _missing_files(layout: DataLayout) -> list[Path]:
    return [path for path in (layout.train, layout.test) if not os.path.isfile(path)]


def _artifact_dir(artifact_root: Path, dose: float, view: str) -> Path:
    return artifact_root / dose_dirname(dose) / view / f"gs{GRIDSIZE[view]}"


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


def _skip_event(
    dose: float, view: str, layouts: Sequence[DataLayout], rejections: _Rejections
) -> SkipSpec:
    checked: list[dict[str, Any]] = [
        {
            "layout": layout.name,
            "train_path": str(layout.train),
            "test_path": str(layout.test),
            "train_exists": os.path.isfile(layout.train),
            "test_exists": os.path.isfile(layout.test),
        }
        for layout in layouts
    ]
    records = rejections.lookup(dose, view)
    reason = _skip_reason(dose, view, layouts, checked, records)
    return SkipSpec(
        dose=float(dose),
        view=view,
        reason=reason,
        code=SkipCode.view_rejected if records else SkipCode.data_missing,
        train_exists=any(c["train_exists"] for c in checked),
        test_exists=any(c["test_exists"] for c in checked),
        details={"layouts_checked": checked, "rejections": records},
    )


def _skip_reason(
    dose: float,
    view: str,
    layouts: Sequence[DataLayout],
    checked: list[dict[str, Any]],
    records: list[dict[str, Any]],
) -> str:
    names = ", ".join(
        f"{layout.train.parent}/{{{layout.train.name}, {layout.test.name}}} ({layout.name})"
        for layout in layouts
    )
    reason = f"Phase D NPZ files for {view} at dose={float(dose)} not found"
    reason += f" (layouts checked: {names})"
    present = [
        c[f"{split}_path"] for c in checked for split in ("train", "test") if c[f"{split}_exists"]
    ]
    if present:
        reason += f"; only found {', '.join(present)}"
    if records:
        explained = "; ".join(_describe_rejection(record) for record in records)
        reason += f"; {OVERLAP_MANIFEST} recorded a rejection: {explained}"
    return reason


def _percent(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value * 100:.3g}%"
    return "unknown"


def _describe_rejection(record: dict[str, Any]) -> str:
    text = (
        f"{record.get('split', 'unknown split')}: acceptance rate "
        f"{_percent(record.get('acceptance_rate'))} below the minimum "
        f"{_percent(record.get('min_acceptance'))}"
    )
    rates = [
        f"{kind} {_percent(record[f'{kind}_rate'])}"
        for kind in ("direct", "greedy")
        if record.get(f"{kind}_rate") is not None
    ]
    return f"{text} ({', '.join(rates)})" if rates else text


class _Rejections:
    """Phase D's recorded rejections, read from overlap_manifest.json on first use."""

    _KEPT = (
        "split",
        "acceptance_rate",
        "min_acceptance",
        "direct_rate",
        "greedy_rate",
        "threshold_px",
        "n_positions",
        "n_accepted",
        "reason",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[tuple[str, str], list[dict[str, Any]]] | None = None

    def lookup(self, dose: float, view: str) -> list[dict[str, Any]]:
        if self._index is None:
            self._index = self._load()
        return self._index.get((dose_dirname(dose), view), [])

    def _load(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        # A missing or damaged manifest only costs the skip reason its explanation.
        try:
            # Opened without following a symlink: a planted link's target is never read.
            with open_binary(self.path) as handle:
                records = json.loads(handle.read())["records"]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}
        index: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in records if isinstance(records, list) else []:
            key = self._key(record)
            if key is not None:
                kept = {name: record.get(name) for name in self._KEPT}
                index.setdefault(key, []).append(kept)
        return index

    @staticmethod
    def _key(record: Any) -> tuple[str, str] | None:
        if not isinstance(record, dict) or record.get("status") != "rejected":
            return None
        dose, view = record.get("dose"), record.get("view")
        if not isinstance(dose, int | float) or not isinstance(view, str):
            return None
        if not math.isfinite(dose) or dose <= 0:
            return None
        return dose_dirname(dose), view
