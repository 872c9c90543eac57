"""Phase C: counts at the dose, Poisson integrality, the split, determinism, files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import SplitData, load_split
from app.study.scan import make_scan, split_midpoint, train_mask
from app.study.simulate import (
    PRESETS,
    PhaseCResult,
    SimulationConfig,
    extract_patches,
    simulate_phase_c,
)
from tests.study.conftest import SMALL

TINY = SimulationConfig(patch_size=32, object_size=96, n_positions=40, seed=3, doses=(1e3, 1e4))


def _splits(result: PhaseCResult, dose: float) -> dict[str, SplitData]:
    directory = result.root / f"dose_{int(dose)}"
    return {split: load_split(directory / f"patched_{split}.npz") for split in ("train", "test")}


@pytest.mark.parametrize("dose", SMALL.doses)
def test_mean_counts_per_pattern_is_the_dose(small_phase_c: PhaseCResult, dose: float) -> None:
    totals = []
    for data in _splits(small_phase_c, dose).values():
        assert data.intensity_scale is not None
        counts = (data.diffraction.astype(np.float64) * data.intensity_scale) ** 2
        totals.append(counts.sum(axis=(1, 2)))
    mean = np.concatenate(totals).mean()
    assert abs(mean - dose) <= 0.05 * dose, (mean, dose)


@pytest.mark.parametrize("dose", SMALL.doses)
def test_counts_are_whole_numbers(small_phase_c: PhaseCResult, dose: float) -> None:
    for data in _splits(small_phase_c, dose).values():
        assert data.intensity_scale is not None
        counts = (data.diffraction.astype(np.float64) * data.intensity_scale) ** 2
        # float32 storage: relative rounding of ~1e-7 on sqrt(counts) → ~2e-7 on counts.
        np.testing.assert_allclose(counts, np.round(counts), rtol=1e-6, atol=1e-6)
        assert counts.max() > 10  # not trivially all zeros


def test_one_intensity_scale_per_dose(small_phase_c: PhaseCResult) -> None:
    low, high = (_splits(small_phase_c, d) for d in SMALL.doses)
    low_scale, high_scale = low["train"].intensity_scale, high["train"].intensity_scale
    assert low_scale is not None
    assert high_scale is not None
    assert low["test"].intensity_scale == low_scale
    ratio = high_scale / low_scale
    assert ratio == pytest.approx(np.sqrt(SMALL.doses[1] / SMALL.doses[0]))


def test_split_is_top_and_bottom_at_the_y_midpoint(small_phase_c: PhaseCResult) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(SMALL.seed, spawn_key=(1,)))
    x, y = make_scan("random", SMALL.n_positions, SMALL.object_size, SMALL.patch_size, rng)
    midpoint = split_midpoint(y)
    splits = _splits(small_phase_c, SMALL.doses[0])
    train, test = splits["train"], splits["test"]
    assert np.all(train.ycoords < midpoint)
    assert np.all(test.ycoords >= midpoint)
    xs = np.concatenate([train.xcoords, test.xcoords])
    ys = np.concatenate([train.ycoords, test.ycoords])
    assert sorted(zip(xs, ys, strict=True)) == sorted(zip(x, y, strict=True))
    assert train.n + test.n == SMALL.n_positions


def test_train_mask_uses_the_midpoint_not_the_median() -> None:
    y = np.array([0.0, 1.0, 2.0, 10.0])
    np.testing.assert_array_equal(train_mask(y), [True, True, True, False])


def test_files_carry_metadata_patches_and_manifest(small_phase_c: PhaseCResult) -> None:
    data = _splits(small_phase_c, 1e3)["train"]
    meta = data.metadata
    for key in (
        "dose",
        "intensity_scale",
        "N",
        "seed",
        "generator_version",
        "scan",
        "object_shape",
    ):
        assert key in meta, key
    assert meta["dose"] == 1e3
    assert meta["N"] == 64
    assert meta["object_shape"] == [240, 240]
    assert data.Y is not None
    assert data.Y.shape == (data.n, 64, 64)
    # Y holds the very patches the diffraction was made from.
    again = extract_patches(data.obj, data.xcoords[:5], data.ycoords[:5], 64)
    np.testing.assert_allclose(data.Y[:5], again, atol=1e-6)
    manifest = json.loads(small_phase_c.manifest_path.read_text())
    assert [d["dose"] for d in manifest["datasets"]] == [1e3, 1e5]
    assert manifest["n_train"] + manifest["n_test"] == 300


def test_same_seed_gives_identical_arrays(tmp_path: Path) -> None:
    first = simulate_phase_c(TINY, tmp_path / "a")
    second = simulate_phase_c(TINY, tmp_path / "b", workers=1)
    other = simulate_phase_c(dataclasses.replace(TINY, seed=4), tmp_path / "c")
    for dose in TINY.doses:
        for split in ("train", "test"):
            name = f"dose_{int(dose)}/patched_{split}.npz"
            with np.load(first.root / name) as a, np.load(second.root / name) as b:
                for key in a.files:
                    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with (
        np.load(first.root / "dose_1000/patched_train.npz") as a,
        np.load(other.root / "dose_1000/patched_train.npz") as c,
    ):
        assert not np.array_equal(a["objectGuess"], c["objectGuess"])


def test_a_dose_noise_does_not_depend_on_the_other_doses(tmp_path: Path) -> None:
    both = simulate_phase_c(TINY, tmp_path / "both")
    alone = simulate_phase_c(dataclasses.replace(TINY, doses=(1e4,)), tmp_path / "alone")
    name = "dose_10000/patched_test.npz"
    with np.load(both.root / name) as a, np.load(alone.root / name) as b:
        np.testing.assert_array_equal(a["diffraction"], b["diffraction"])


def test_probe_file_is_used(tmp_path: Path) -> None:
    probe = np.exp(1j * np.linspace(0, 1, 32 * 32)).reshape(32, 32).astype(np.complex64)
    np.savez(tmp_path / "probe.npz", probeGuess=probe)
    config = dataclasses.replace(TINY, doses=(1e3,), probe_path=tmp_path / "probe.npz")
    result = simulate_phase_c(config, tmp_path / "out")
    data = load_split(result.root / "dose_1000/patched_train.npz")
    np.testing.assert_array_equal(data.probe, probe)
    assert data.metadata["probe"] == str(tmp_path / "probe.npz")


@pytest.mark.parametrize("kind", ["raster", "jittered"])
def test_raster_scans_stay_inside_and_simulate(tmp_path: Path, kind: str) -> None:
    config = dataclasses.replace(TINY, scan=kind, doses=(1e3,))
    result = simulate_phase_c(config, tmp_path)
    train = load_split(result.root / "dose_1000/patched_train.npz")
    test = load_split(result.root / "dose_1000/patched_test.npz")
    xs = np.concatenate([train.xcoords, test.xcoords])
    assert train.n + test.n == 40
    assert xs.min() >= 16
    assert xs.max() <= 96 - 16
    if kind == "raster":
        assert len(np.unique(np.round(xs, 9))) == 7  # ceil(sqrt(40)) columns


def test_presets_are_the_study_sizes() -> None:
    fly64 = PRESETS["fly64"]
    assert (fly64.patch_size, fly64.object_size, fly64.n_positions) == (128, 464, 10_304)
    assert fly64.scan == "random"
    assert fly64.seed == 42
    assert PRESETS["demo"].patch_size == 64


@pytest.mark.parametrize(
    "change",
    [{"patch_size": 63}, {"object_size": 32}, {"scan": "spiral"}, {"doses": (0.0,)},
     {"doses": (1000.2, 1000.7)}, {"n_positions": 1}],
)  # fmt: skip
def test_bad_config_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|doses|share"):
        dataclasses.replace(TINY, **change)


def test_a_scan_without_two_rows_cannot_be_split(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, scan="raster", n_positions=2)
    with pytest.raises(ValueError, match="one row"):
        simulate_phase_c(config, tmp_path)
