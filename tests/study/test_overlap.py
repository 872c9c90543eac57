"""Phase D on disk: written views, recorded rejections, the manifest, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.study.contract import load_split
from app.study.npz import NpzWriter
from app.study.overlap import OverlapInputError, build_overlap_views
from app.study.simulate import PhaseCResult
from tests.study.conftest import SMALL

RECORD_KEYS = {
    "dose", "view", "split", "status", "strategy", "direct_rate", "greedy_rate",
    "acceptance_rate", "min_acceptance", "threshold_px", "n_positions", "n_accepted",
    "reason", "path", "probe_overlap",
}  # fmt: skip


def _write_phase_c(root: Path, dose: float, positions: dict[str, tuple[np.ndarray, ...]]) -> None:
    """A hand-made Phase C dose at N = 16 with the given (x, y) per split."""
    for split, (x, y) in positions.items():
        with NpzWriter(root / f"dose_{int(dose)}" / f"patched_{split}.npz") as writer:
            writer.add("diffraction", np.ones((len(x), 16, 16), dtype=np.float32))
            writer.add("xcoords", x)
            writer.add("ycoords", y)
            writer.add("probeGuess", np.ones((16, 16), dtype=np.complex64))
            writer.add("objectGuess", np.ones((200, 200), dtype=np.complex64))


def _raster(step: float, y0: float) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(36)
    return 20 + (index % 6) * step, y0 + (index // 6) * step


def _cluster() -> tuple[np.ndarray, np.ndarray]:
    return 50 + np.arange(50) * 0.1, np.full(50, 150.0)


def test_small_study_keeps_dense_and_rejects_sparse(
    small_phase_c: PhaseCResult, tmp_path: Path
) -> None:
    report = build_overlap_views(small_phase_c.root, tmp_path)
    manifest = json.loads((tmp_path / "overlap_manifest.json").read_text())
    assert manifest["timestamp"].endswith("Z")
    assert manifest["phase_c_root"] == str(small_phase_c.root.resolve())
    assert manifest["min_acceptance_mode"] == "fixed"
    assert manifest["records"] == report.records
    assert len(report.records) == len(SMALL.doses) * 2 * 2
    for record in report.records:
        assert set(record) == RECORD_KEYS
        dense = record["view"] == "dense"
        assert record["status"] == ("accepted" if dense else "rejected"), record
        assert record["min_acceptance"] == 0.10
        assert record["threshold_px"] == pytest.approx(0.3 * 64 if dense else 0.8 * 64)
        view_dir = tmp_path / f"dose_{int(record['dose'])}" / record["view"]
        written = view_dir / f"{record['view']}_{record['split']}.npz"
        assert written.is_file() == dense
        assert record["path"] == (str(written) if dense else None)
        if not dense:
            assert "below the minimum" in record["reason"]
            assert record["greedy_rate"] == record["acceptance_rate"] < 0.10


def test_accepted_view_holds_the_kept_positions_and_metrics(
    small_phase_c: PhaseCResult, tmp_path: Path
) -> None:
    report = build_overlap_views(small_phase_c.root, tmp_path, doses=[1e3], views=["dense"])
    record = next(r for r in report.records if r["split"] == "train")
    source = load_split(small_phase_c.root / "dose_1000/patched_train.npz")
    view = load_split(record["path"])
    assert view.n == record["n_accepted"] > 0
    kept = np.isin(source.xcoords, view.xcoords)
    np.testing.assert_array_equal(view.diffraction, source.diffraction[kept])
    assert view.Y is not None
    assert source.Y is not None
    np.testing.assert_array_equal(view.Y, source.Y[kept])
    np.testing.assert_array_equal(view.probe, source.probe)
    assert view.intensity_scale == source.intensity_scale
    with np.load(record["path"]) as npz:
        assert float(npz["min_spacing"]) >= record["threshold_px"] - 1e-9
        assert int(npz["n_accepted"]) == view.n
        assert str(npz["selection_strategy"]) == record["strategy"]
        assert float(npz["acceptance_rate"]) == pytest.approx(record["acceptance_rate"])
        for name in ("max_spacing", "mean_spacing", "median_spacing", "spacing_threshold"):
            assert np.isfinite(npz[name])


def test_view_is_written_only_when_both_splits_pass(tmp_path: Path) -> None:
    phase_c, phase_d = tmp_path / "c", tmp_path / "d"
    _write_phase_c(phase_c, 1e3, {"train": _raster(5.0, 20), "test": _cluster()})
    stale = phase_d / "dose_1000/dense/dense_train.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    report = build_overlap_views(phase_c, phase_d, views=["dense"])
    train, test = report.records
    assert train["status"] == "accepted"
    assert train["strategy"] == "direct"
    assert train["path"] is None
    assert "test split was rejected" in train["reason"]
    assert test["status"] == "rejected"
    assert test["path"] is None
    assert not stale.exists()
    assert report.accepted_views() == []


def test_a_rejection_does_not_stop_other_doses(tmp_path: Path) -> None:
    phase_c, phase_d = tmp_path / "c", tmp_path / "d"
    _write_phase_c(phase_c, 1e3, {"train": _cluster(), "test": _cluster()})
    _write_phase_c(phase_c, 1e4, {"train": _raster(5.0, 20), "test": _raster(5.0, 120)})
    report = build_overlap_views(phase_c, phase_d, views=["dense"])
    assert [(r["dose"], r["status"]) for r in report.records] == [
        (1000.0, "rejected"), (1000.0, "rejected"), (10000.0, "accepted"), (10000.0, "accepted"),
    ]  # fmt: skip
    assert report.accepted_views() == [(10000.0, "dense")]
    assert (phase_d / "dose_10000/dense/dense_test.npz").is_file()


def test_geometry_mode_is_recorded(tmp_path: Path) -> None:
    phase_c = tmp_path / "c"
    _write_phase_c(phase_c, 1e3, {"train": _raster(5.0, 20), "test": _raster(5.0, 120)})
    report = build_overlap_views(phase_c, tmp_path / "d", min_acceptance="geometry")
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["min_acceptance_mode"] == "geometry"
    sparse = next(r for r in report.records if r["view"] == "sparse")
    # bbox 25 × 25, 36 positions, S = 0.8 · 16 = 12.8: bound = 625 / (36 π 6.4²) ≈ 0.135 → 0.10.
    assert sparse["min_acceptance"] == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phase_c_root": "missing"}, "Phase C root not found"),
        ({"doses": [5e3]}, "dose 5000: Phase C file not found"),
        ({"doses": [-1.0]}, "positive and finite"),
        ({"views": ["baseline"]}, "unknown overlap view 'baseline'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    phase_c = tmp_path / "c"
    _write_phase_c(phase_c, 1e3, {"train": _raster(5.0, 20), "test": _raster(5.0, 120)})
    root = tmp_path / str(kwargs.pop("phase_c_root", "c"))
    with pytest.raises(OverlapInputError, match=message):
        build_overlap_views(root, tmp_path / "d", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "d" / "overlap_manifest.json").exists()
