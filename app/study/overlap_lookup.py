"""The probe-disc overlap Phase D measured for a job's data files, from overlap_manifest.json.

Phase D records `probe_overlap` (app.study.probe_overlap) for the two split files of every
view it wrote and for every Phase C split it read. A job's measure is looked up by the exact
paths of its train and test files, so a baseline job finds its Phase C scan, a dense or sparse
job its view, and data Phase D did not write or read (another Phase C root, a file put there
by hand) finds nothing rather than another file's numbers.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from app.paths import open_binary
from app.study.skips import OVERLAP_MANIFEST

logger = logging.getLogger(__name__)


class ProbeOverlaps:
    """Phase D's measures by data file, read from `phase_d_root`'s manifest on first use."""

    def __init__(self, phase_d_root: str | Path) -> None:
        self.path = Path(phase_d_root) / OVERLAP_MANIFEST
        self._index: dict[str, dict[str, Any]] | None = None
        self._missing_reason: str | None = None

    def for_job(self, train_path: str, test_path: str) -> tuple[dict[str, Any] | None, str | None]:
        """({"train": …, "test": …}, None) when measured, else (None, why not)."""
        if self._index is None:
            self._index = self._load()
        if self._missing_reason is not None:
            return None, self._missing_reason
        measured = {
            split: self._index.get(os.path.normpath(path))
            for split, path in (("train", train_path), ("test", test_path))
        }
        if all(value is None for value in measured.values()):
            return None, f"{OVERLAP_MANIFEST} holds no probe-disc overlap for this job's files"
        return measured, None

    def _load(self) -> dict[str, dict[str, Any]]:
        # A missing or damaged manifest only costs the jobs their measured overlap.
        try:
            # Opened without following a symlink: a planted link's target is never read.
            with open_binary(self.path) as handle:
                document = json.loads(handle.read())
        except FileNotFoundError:
            self._missing_reason = f"no {OVERLAP_MANIFEST} under phase_d_root"
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s: %s", self.path, exc)
            self._missing_reason = f"{OVERLAP_MANIFEST} under phase_d_root is unreadable"
            return {}
        if not isinstance(document, dict):
            self._missing_reason = f"{OVERLAP_MANIFEST} under phase_d_root is unreadable"
            return {}
        entries = [
            entry
            for key in ("records", "phase_c")
            if isinstance(document.get(key), list)
            for entry in document[key]
        ]
        index: dict[str, dict[str, Any]] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            path, measured = entry.get("path"), entry.get("probe_overlap")
            if isinstance(path, str) and isinstance(measured, dict):
                index[os.path.normpath(path)] = measured
        return index
