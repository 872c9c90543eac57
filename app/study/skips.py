"""Skip events (study.md §6): a view left out because its Phase D data is missing, with
the layouts checked and, when Phase D recorded one, the rejection that explains it."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.paths import find_symlink, open_binary
from app.study.design import dose_dirname
from app.study.layouts import DataLayout

logger = logging.getLogger(__name__)

OVERLAP_MANIFEST = "overlap_manifest.json"


class SkipCode(StrEnum):
    view_rejected = "view_rejected"  # Phase D recorded a rejection for this dose and view
    data_missing = "data_missing"  # no rejection on record: the files are simply absent


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


def skip_event(
    dose: float,
    view: str,
    layouts: Sequence[DataLayout],
    rejections: Rejections,
    *,
    root: Path,
) -> SkipSpec:
    """The skip event of a view none of whose layouts holds both files.

    A file "exists" only as a regular file reached without a symlink below `root` (the
    Phase D root): a link is never followed, so a skip event says nothing of what lies
    outside the data.
    """
    checked: list[dict[str, Any]] = [
        {
            "layout": layout.name,
            "train_path": str(layout.train),
            "test_path": str(layout.test),
            "train_exists": plain_file(layout.train, root=root),
            "test_exists": plain_file(layout.test, root=root),
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


def plain_file(path: Path, *, root: Path) -> bool:
    """Whether `path` is a regular file with no symlink from `root` down to it."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    return find_symlink(path, root=root) is None


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


class Rejections:
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
