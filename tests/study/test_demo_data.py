"""make_demo_data: the demo geometry, and the smaller copy other tests can afford."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.study.contract import load_split
from app.study.demo_data import MIN_DENSE_POSITIONS, demo_object_size, make_demo_data


def test_small_demo_copy_keeps_dense_and_rejects_sparse(tmp_path: Path) -> None:
    phase_c, phase_d = make_demo_data(tmp_path, doses=(1e3, 1e5), n_positions=150)
    assert (phase_c, phase_d) == (tmp_path / "phase_c", tmp_path / "phase_d")
    records = json.loads((phase_d / "overlap_manifest.json").read_text())["records"]
    for dose in (1000, 100000):
        for split in ("train", "test"):
            dense = load_split(phase_d / f"dose_{dose}/dense/dense_{split}.npz")
            assert dense.N == 64
            assert dense.n >= MIN_DENSE_POSITIONS
        assert not list(phase_d.glob(f"dose_{dose}/sparse/*.npz"))
        sparse = [r for r in records if r["dose"] == dose and r["view"] == "sparse"]
        assert [r["status"] for r in sparse] == ["rejected", "rejected"]
    manifest = json.loads((phase_c / "run_manifest.json").read_text())
    assert manifest["config"]["object_size"] == demo_object_size(150) < 464


def test_the_full_demo_keeps_the_study_geometry() -> None:
    assert demo_object_size(1000) == 464


def test_too_few_positions_for_a_demo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use more positions"):
        make_demo_data(tmp_path, n_positions=60)
    assert not (tmp_path / "phase_c").exists()
