"""Phase D (study.md §5): dense and sparse overlap views of each Phase C dose.

For every dose, view and split the spacing selection of `app.study.selection` decides
which positions to keep. A view is written only when both of its splits are accepted, as
`<out>/dose_<int>/<view>/<view>_{train,test}.npz`; otherwise no NPZ exists for it (stale
ones from an earlier run are removed) and the records say why. Every record, accepted or
rejected, goes to `<out>/overlap_manifest.json`; a rejection never stops the other views.

Each record also holds `probe_overlap`, how much the probe discs of the positions it kept
overlap (app.study.probe_overlap; null when it kept none), and the manifest's `phase_c`
list holds the same measure for every Phase C split in full (what a baseline job trains on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.files import utc_timestamp, write_json_atomic
from app.study.contract import SplitData, load_split
from app.study.design import OVERLAP_VIEWS, StudyDesign, dose_dirname
from app.study.npz import NpzWriter
from app.study.probe_overlap import definition, measure_probe_overlap
from app.study.selection import MinAcceptance, Selection, select_positions, spacing_metrics

logger = logging.getLogger(__name__)

MANIFEST_NAME = "overlap_manifest.json"
SPLITS = ("train", "test")
_PER_SCAN_KEYS = ("diffraction", "xcoords", "ycoords", "xcoords_start", "ycoords_start")


class OverlapInputError(ValueError):
    """Phase D cannot start: missing Phase C data, an unknown dose or view."""


@dataclass(frozen=True)
class OverlapReport:
    """Where Phase D wrote its manifest, and every record in it."""

    manifest_path: Path
    records: list[dict[str, Any]]

    def accepted_views(self) -> list[tuple[float, str]]:
        """(dose, view) pairs whose NPZ files were written."""
        pairs = {(r["dose"], r["view"]) for r in self.records if r["path"] is not None}
        return sorted(pairs)


def phase_c_doses(phase_c_root: Path) -> list[float]:
    """Doses present under a Phase C root (`dose_<int>` directories), ascending."""
    doses = []
    for child in phase_c_root.iterdir() if phase_c_root.is_dir() else []:
        number = child.name.removeprefix("dose_")
        if child.is_dir() and child.name.startswith("dose_") and number.isdigit():
            doses.append(float(number))
    return sorted(doses)


def build_overlap_views(
    phase_c_root: str | Path,
    phase_d_root: str | Path,
    *,
    doses: Sequence[float] | None = None,
    views: Sequence[str] | None = None,
    min_acceptance: MinAcceptance | None = None,
    design: StudyDesign | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> OverlapReport:
    """Write Phase D views for each dose and view, and `overlap_manifest.json`."""
    design = design or StudyDesign()
    phase_c, phase_d = Path(phase_c_root).resolve(), Path(phase_d_root).resolve()
    chosen_doses = _check_doses(phase_c, doses)
    default_views = [v for v in design.views if v in OVERLAP_VIEWS]
    chosen_views = _check_views(views if views is not None else default_views)
    mode = design.min_acceptance if min_acceptance is None else min_acceptance
    records: list[dict[str, Any]] = []
    scans: list[dict[str, Any]] = []
    for number, dose in enumerate(chosen_doses, start=1):
        splits = {split: load_split(_phase_c_file(phase_c, dose, split)) for split in SPLITS}
        scans += [_scan_record(dose, split, data, design) for split, data in splits.items()]
        for view in chosen_views:
            records += _build_view(phase_d, dose, view, splits, design, mode)
        if progress is not None:
            progress("overlap views", number, len(chosen_doses))
    manifest_path = phase_d / MANIFEST_NAME
    manifest = {
        "timestamp": utc_timestamp(),
        "phase_c_root": str(phase_c),
        "min_acceptance_mode": "geometry" if mode == "geometry" else "fixed",
        "records": records,
        "probe_overlap_definition": definition(design.neighbor_count),
        "phase_c": scans,
    }
    write_json_atomic(manifest_path, manifest)
    return OverlapReport(manifest_path=manifest_path, records=records)


def _phase_c_file(phase_c: Path, dose: float, split: str) -> Path:
    return phase_c / dose_dirname(dose) / f"patched_{split}.npz"


def _scan_record(dose: float, split: str, data: SplitData, design: StudyDesign) -> dict[str, Any]:
    """The probe-disc overlap of a Phase C split's full scan."""
    return {
        "dose": float(dose),
        "split": split,
        "path": str(data.path),
        "probe_overlap": _measure(data, np.ones(data.n, dtype=bool), design),
    }


def _check_doses(phase_c: Path, doses: Sequence[float] | None) -> list[float]:
    if not phase_c.is_dir():
        raise OverlapInputError(f"Phase C root not found: {phase_c}")
    available = phase_c_doses(phase_c)
    if doses is None:
        if not available:
            raise OverlapInputError(f"no dose_<int> directories under Phase C root {phase_c}")
        doses = available
    for dose in doses:
        if not np.isfinite(dose) or dose <= 0:
            raise OverlapInputError(f"dose {dose!r} must be positive and finite")
        missing = [p for s in SPLITS if not (p := _phase_c_file(phase_c, dose, s)).is_file()]
        if missing:
            listed = ", ".join(f"{d:g}" for d in available) or "none"
            raise OverlapInputError(
                f"dose {dose:g}: Phase C file not found: {missing[0]} (doses present: {listed})"
            )
    return sorted(float(d) for d in doses)


def _check_views(views: Sequence[str]) -> list[str]:
    unknown = [v for v in views if v not in OVERLAP_VIEWS]
    if unknown:
        raise OverlapInputError(
            f"unknown overlap view {unknown[0]!r}: expected one of {', '.join(OVERLAP_VIEWS)}"
        )
    return [v for v in OVERLAP_VIEWS if v in views]


def _build_view(
    phase_d: Path,
    dose: float,
    view: str,
    splits: dict[str, SplitData],
    design: StudyDesign,
    mode: MinAcceptance,
) -> list[dict[str, Any]]:
    """Select, then write both splits or neither; return the view's two records."""
    directory = phase_d / dose_dirname(dose) / view
    selections = {
        split: select_positions(
            data.xcoords, data.ycoords, design.spacing_threshold(view, data.N), mode
        )
        for split, data in splits.items()
    }
    written = all(selection.accepted for selection in selections.values())
    records = []
    for split, selection in selections.items():
        path = directory / f"{view}_{split}.npz"
        measured = _measure(splits[split], selection.mask, design)
        if written:
            _write_view(path, splits[split], selection, view, measured)
        reason = selection.reason
        if selection.accepted and not written:
            other = next(s for s, sel in selections.items() if not sel.accepted)
            reason = f"view not written: the {other} split was rejected"
        kept_path = path if written else None
        records.append(_record(dose, view, split, selection, reason, kept_path, measured))
        logger.info("dose %g %s %s: %s", dose, view, split, reason or "accepted")
    if not written:
        _remove_stale(directory, view)
    return records


def _measure(data: SplitData, keep: np.ndarray, design: StudyDesign) -> dict[str, Any] | None:
    """The probe-disc overlap of the positions `keep` selects."""
    return measure_probe_overlap(
        data.xcoords[keep], data.ycoords[keep], data.probe, neighbor_count=design.neighbor_count
    )


def _record(
    dose: float,
    view: str,
    split: str,
    selection: Selection,
    reason: str | None,
    path: Path | None,
    probe_overlap: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "dose": float(dose),
        "view": view,
        "split": split,
        "status": "accepted" if selection.accepted else "rejected",
        "strategy": selection.strategy,
        "direct_rate": selection.direct_rate,
        "greedy_rate": selection.greedy_rate,
        "acceptance_rate": selection.acceptance_rate,
        "min_acceptance": selection.min_acceptance,
        "threshold_px": selection.threshold_px,
        "n_positions": selection.n_positions,
        "n_accepted": selection.n_accepted,
        "reason": reason,
        "path": None if path is None else str(path),
        "probe_overlap": probe_overlap,
    }


def _write_view(
    path: Path,
    data: SplitData,
    selection: Selection,
    view: str,
    probe_overlap: dict[str, Any] | None,
) -> None:
    """Filtered per-scan arrays, the globals copied, and the spacing metrics."""
    keep = selection.mask
    spacing = spacing_metrics(data.xcoords[keep], data.ycoords[keep])
    metadata = dict(data.metadata)
    metadata["overlap"] = {
        "view": view,
        "strategy": selection.strategy,
        "threshold_px": selection.threshold_px,
        "n_positions": selection.n_positions,
        "n_accepted": selection.n_accepted,
        "acceptance_rate": selection.acceptance_rate,
        "source": str(data.path),
        "probe_overlap": probe_overlap,
    }
    with NpzWriter(path) as writer:
        for key in _PER_SCAN_KEYS:
            writer.add(key, getattr(data, key)[keep])
        writer.add("scan_index", data.scan_index[keep])
        if data.Y is not None:
            writer.add("Y", data.Y[keep])
        writer.add("probeGuess", data.probe)
        writer.add("objectGuess", data.obj)
        writer.add_metadata(metadata)
        for name, value in spacing.items():
            writer.add(f"{name}_spacing", np.float64(value))
        writer.add("spacing_threshold", np.float64(selection.threshold_px))
        writer.add("n_positions", np.int64(selection.n_positions))
        writer.add("n_accepted", np.int64(selection.n_accepted))
        writer.add("acceptance_rate", np.float64(selection.acceptance_rate))
        writer.add("selection_strategy", np.str_(selection.strategy or ""))


def _remove_stale(directory: Path, view: str) -> None:
    """A rejected view must not leave files from an earlier run for training to pick up."""
    for name in (f"{view}_train.npz", f"{view}_test.npz", "train.npz", "test.npz"):
        stale = directory / name
        if stale.is_file():
            stale.unlink()
            logger.info("removed stale %s of a rejected view", stale)
