"""A job's measured probe-disc overlap, looked up in Phase D's manifest by its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.study.npz import NpzWriter
from app.study.overlap import build_overlap_views
from app.study.overlap_lookup import ProbeOverlaps


def _write_phase_c(root: Path) -> None:
    """One dose at N = 16: a raster of step 5 px per split, a probe of ones."""
    index = np.arange(36)
    for split, y0 in (("train", 20.0), ("test", 120.0)):
        with NpzWriter(root / "dose_1000" / f"patched_{split}.npz") as writer:
            writer.add("diffraction", np.ones((36, 16, 16), dtype=np.float32))
            writer.add("xcoords", 20 + (index % 6) * 5.0)
            writer.add("ycoords", y0 + (index // 6) * 5.0)
            writer.add("probeGuess", np.ones((16, 16), dtype=np.complex64))
            writer.add("objectGuess", np.ones((200, 200), dtype=np.complex64))


def test_views_and_phase_c_scans_are_found_by_their_paths(tmp_path: Path) -> None:
    phase_c, phase_d = tmp_path / "c", tmp_path / "d"
    _write_phase_c(phase_c)
    report = build_overlap_views(phase_c, phase_d, views=["dense"])
    manifest = json.loads(report.manifest_path.read_text())
    overlaps = ProbeOverlaps(phase_d)

    train, test = report.records
    measured, reason = overlaps.for_job(train["path"], test["path"])
    assert reason is None
    assert measured == {"train": train["probe_overlap"], "test": test["probe_overlap"]}

    scans = {entry["split"]: entry for entry in manifest["phase_c"]}
    measured, reason = overlaps.for_job(scans["train"]["path"], scans["test"]["path"])
    assert reason is None
    assert measured == {split: scans[split]["probe_overlap"] for split in ("train", "test")}
    assert measured["train"]["n_positions"] == 36


def test_files_phase_d_did_not_measure_have_none(tmp_path: Path) -> None:
    phase_c, phase_d = tmp_path / "c", tmp_path / "d"
    _write_phase_c(phase_c)
    build_overlap_views(phase_c, phase_d, views=["dense"])
    elsewhere = str(tmp_path / "other" / "dose_1000" / "patched_train.npz")
    measured, reason = ProbeOverlaps(phase_d).for_job(elsewhere, elsewhere)
    assert measured is None
    assert reason == "overlap_manifest.json holds no probe-disc overlap for this job's files"


def test_a_missing_manifest_is_a_reason(tmp_path: Path) -> None:
    measured, reason = ProbeOverlaps(tmp_path).for_job("/a/train.npz", "/a/test.npz")
    assert measured is None
    assert reason == "no overlap_manifest.json under phase_d_root"


def test_a_damaged_manifest_is_a_reason(tmp_path: Path) -> None:
    (tmp_path / "overlap_manifest.json").write_text("{not json")
    measured, reason = ProbeOverlaps(tmp_path).for_job("/a/train.npz", "/a/test.npz")
    assert measured is None
    assert reason == "overlap_manifest.json under phase_d_root is unreadable"


def test_a_manifest_from_before_the_measure_has_none(tmp_path: Path) -> None:
    record = {"dose": 1000.0, "view": "dense", "split": "train", "status": "accepted",
              "path": "/d/dose_1000/dense/dense_train.npz"}  # fmt: skip
    (tmp_path / "overlap_manifest.json").write_text(json.dumps({"records": [record, "junk"]}))
    measured, reason = ProbeOverlaps(tmp_path).for_job(record["path"], "/d/test.npz")
    assert measured is None
    assert reason == "overlap_manifest.json holds no probe-disc overlap for this job's files"


def test_one_measured_split_is_kept_beside_a_missing_one(tmp_path: Path) -> None:
    entry = {"dose": 1000.0, "split": "train", "path": "/c/dose_1000/patched_train.npz",
             "probe_overlap": {"n_positions": 3}}  # fmt: skip
    (tmp_path / "overlap_manifest.json").write_text(json.dumps({"phase_c": [entry]}))
    measured, reason = ProbeOverlaps(tmp_path).for_job(entry["path"], "/c/missing_test.npz")
    assert reason is None
    assert measured == {"train": {"n_positions": 3}, "test": None}
