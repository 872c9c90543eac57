"""Where a view's split files live: Phase C's layout and Phase D's two (study.md §3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.study.design import dose_dirname


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


def missing_files(layout: DataLayout) -> list[Path]:
    """The layout's split files that do not exist."""
    return [path for path in (layout.train, layout.test) if not os.path.isfile(path)]
