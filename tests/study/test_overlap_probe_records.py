"""Phase D records the measured probe-disc overlap of every view and every Phase C scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import load_split
from app.study.overlap import build_overlap_views
from app.study.probe_overlap import measure_probe_overlap, probe_disc_diameter
from app.study.simulate import PhaseCResult
from tests.study.conftest import SMALL

MEASURE_KEYS = {
    "n_positions", "probe_diameter_px", "median_spacing_px", "linear_overlap",
    "nearest_neighbour_overlap", "knn_overlap", "neighbor_count", "covered_fraction",
}  # fmt: skip


@pytest.fixture(scope="module")
def phase_d(small_phase_c: PhaseCResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phase_d")
    build_overlap_views(small_phase_c.root, root)
    return root


@pytest.fixture(scope="module")
def manifest(phase_d: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((phase_d / "overlap_manifest.json").read_text())
    return document


def test_every_record_measures_the_positions_it_kept(
    small_phase_c: PhaseCResult, manifest: dict[str, Any]
) -> None:
    for record in manifest["records"]:
        measured = record["probe_overlap"]
        assert set(measured) == MEASURE_KEYS, record
        assert measured["n_positions"] == record["n_accepted"] > 0
        source = load_split(small_phase_c.root / f"dose_{int(record['dose'])}" /
                            f"patched_{record['split']}.npz")  # fmt: skip
        assert measured["probe_diameter_px"] == round(probe_disc_diameter(source.probe), 2)
        assert measured["neighbor_count"] == 7
        assert measured["median_spacing_px"] >= record["threshold_px"]
        for name in ("linear_overlap", "nearest_neighbour_overlap", "knn_overlap",
                     "covered_fraction"):  # fmt: skip
            assert 0.0 <= measured[name] <= 1.0, name


def test_dense_views_overlap_more_than_sparse_and_less_than_the_full_scan(
    manifest: dict[str, Any],
) -> None:
    by_key = {(r["dose"], r["view"], r["split"]): r["probe_overlap"] for r in manifest["records"]}
    full = {(r["dose"], r["split"]): r["probe_overlap"] for r in manifest["phase_c"]}
    for dose in SMALL.doses:
        for split in ("train", "test"):
            dense, sparse = by_key[(dose, "dense", split)], by_key[(dose, "sparse", split)]
            for name in ("nearest_neighbour_overlap", "covered_fraction"):
                assert sparse[name] < dense[name] < full[(dose, split)][name], name


def test_the_phase_c_scans_are_measured_in_full(
    small_phase_c: PhaseCResult, manifest: dict[str, Any]
) -> None:
    assert [(r["dose"], r["split"]) for r in manifest["phase_c"]] == [
        (dose, split) for dose in SMALL.doses for split in ("train", "test")
    ]
    for record in manifest["phase_c"]:
        source = load_split(record["path"])
        assert source.path.parent.parent == small_phase_c.root.resolve()
        expected = measure_probe_overlap(source.xcoords, source.ycoords, source.probe)
        assert record["probe_overlap"] == expected
    assert manifest["probe_overlap_definition"]["disc_energy_fraction"] == pytest.approx(0.8647)


def test_a_written_view_carries_its_measure_in_its_metadata(manifest: dict[str, Any]) -> None:
    written = [r for r in manifest["records"] if r["path"] is not None]
    assert written
    for record in written:
        with np.load(record["path"]) as npz:
            metadata = json.loads(str(npz["_metadata"]))
        assert metadata["overlap"]["probe_overlap"] == record["probe_overlap"]


def test_the_record_keeps_its_earlier_keys(manifest: dict[str, Any]) -> None:
    # Readers of the file (app.study.skips) find every key where it was.
    rejected = next(r for r in manifest["records"] if r["status"] == "rejected")
    for key in ("acceptance_rate", "min_acceptance", "direct_rate", "greedy_rate",
                "threshold_px", "n_positions", "n_accepted", "reason", "path"):  # fmt: skip
        assert key in rejected, key
    assert rejected["n_positions"] > rejected["probe_overlap"]["n_positions"]
