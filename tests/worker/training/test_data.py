"""The data module: contract loading, N, samples, ground truth and the intensity scale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.study.contract import load_split
from worker.training.data import PtychoDataModule, ground_truth_patches, intensity_scale
from worker.training.evaluate import reference_loss
from worker.training.runner import build_model


def _without(source: Path, target: Path, *keys: str) -> Path:
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files if key not in keys}
    np.savez(target, **arrays)
    return target


def test_ground_truth_is_cut_from_the_object_when_y_is_absent(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    with_y = load_split(tiny_split[1])
    without_y = load_split(_without(tiny_split[1], tmp_path / "no_y.npz", "Y"))
    assert with_y.Y is not None
    assert without_y.Y is None
    np.testing.assert_allclose(ground_truth_patches(without_y), with_y.Y, atol=1e-6)


def test_a_patch_past_the_object_s_edge_sees_an_empty_object_there(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    split = load_split(tiny_split[1])
    n = split.N
    x = np.array([n / 2 - 3.0, split.obj.shape[1] - n / 2 + 2.5])  # 3 px past left, 2.5 right
    y = np.array([n / 2 + 1.0, n / 2 + 1.0])
    edge = _rewritten(tiny_split[1], tmp_path / "edge.npz", xcoords=x, ycoords=y,
                      diffraction=split.diffraction[:2])  # fmt: skip
    patches = ground_truth_patches(_no_y(edge, tmp_path))
    left, right = patches
    np.testing.assert_array_equal(left[:, :3], 0)  # the three columns left of the object
    np.testing.assert_allclose(left[:, 3:], split.obj[1 : 1 + n, : n - 3], atol=1e-6)
    assert np.all(right[:, -2:] == 0)
    assert np.all(right[:, -3] != 0)  # half a pixel inside: blended with the empty side


def _no_y(path: Path, tmp_path: Path) -> Any:
    loaded = load_split(_without(path, tmp_path / f"{path.stem}-no-y.npz", "Y", "xcoords_start",
                                 "ycoords_start", "scan_index"))  # fmt: skip
    assert loaded.Y is None
    return loaded


def _rewritten(source: Path, target: Path, **changes: Any) -> Path:
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files if key != "_metadata"}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


def test_intensity_scale_comes_from_metadata_then_photon_quantum_then_dose(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    split = load_split(tiny_split[0])
    stored = split.intensity_scale
    assert stored is not None
    assert intensity_scale(split, 1e5) == stored
    assert json.loads(json.dumps(split.metadata))["dose"] == 1e5
    # Without metadata the counts' granularity (one photon = 1/scale) still gives the scale.
    bare = load_split(_rewritten(tiny_split[0], tmp_path / "no_meta.npz"))
    assert bare.scale_hint == pytest.approx(stored, rel=1e-5)
    assert intensity_scale(bare, 1e5) == pytest.approx(stored, rel=1e-5)
    # Values with no granularity: the estimate the dose implies. Train-split counts average
    # the dose only approximately (the dose is a mean over both splits).
    jitter = 1 + 1e-3 * np.random.default_rng(0).random(split.diffraction.shape)
    smooth = _rewritten(
        tiny_split[0], tmp_path / "smooth.npz",
        diffraction=(split.diffraction * jitter).astype(np.float32),
    )  # fmt: skip
    continuous = load_split(smooth)
    assert continuous.intensity_scale is None
    assert intensity_scale(continuous, 1e5) == pytest.approx(stored, rel=0.05)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_samples_have_the_shapes_the_network_expects(make_config: Any, gridsize: int) -> None:
    config = make_config(gridsize=gridsize, n_groups=40, val_fraction=0.0)
    data = PtychoDataModule(config)
    data.setup()
    test_split = data.test_split
    assert data.n == 64
    channels = gridsize**2
    expected_train = 40 if gridsize == 2 else min(40, data.train_split.n)
    assert data.train_samples.diffraction.shape == (expected_train, channels, 64, 64)
    assert data.test_samples.diffraction.shape == (test_split.n, channels, 64, 64)
    diffraction, offsets = next(iter(data.train_dataloader()))
    assert diffraction.dtype == torch.float32
    assert offsets.shape[1:] == (channels, 2)


@pytest.mark.slow
def test_ground_truth_scores_better_than_the_untrained_network(make_config: Any) -> None:
    config = make_config(gridsize=2)
    data = PtychoDataModule(config)
    data.setup()
    torch.manual_seed(0)
    model = build_model(config, data)
    diffraction = torch.from_numpy(data.test_samples.diffraction)
    offsets = torch.from_numpy(data.test_samples.offsets)
    with torch.no_grad():
        untrained = float(
            model.loss(model.predicted_amplitude(model(diffraction), offsets), diffraction)
        )
    assert reference_loss(model, data) < untrained


@pytest.mark.parametrize("gridsize", [1, 2])
def test_validation_is_held_out_of_the_train_split_never_the_test_split(
    make_config: Any, gridsize: int
) -> None:
    data = PtychoDataModule(make_config(gridsize=gridsize, n_groups=40, val_fraction=0.2))
    data.setup()
    everything = PtychoDataModule(make_config(gridsize=gridsize, n_groups=40, val_fraction=0.0))
    everything.setup()
    assert data.val_samples.size == 8
    assert data.train_samples.size == 32
    # Together they are exactly the samples a run without validation trains on.
    rows = {
        tuple(r) for r in np.concatenate([data.train_samples.indices, data.val_samples.indices])
    }
    assert rows == {tuple(r) for r in everything.train_samples.indices}
    # Validation patterns are train-split patterns: their diffraction is the train file's.
    np.testing.assert_array_equal(
        data.val_samples.diffraction, data.train_split.diffraction[data.val_samples.indices]
    )
    diffraction, _ = next(iter(data.val_dataloader()))
    assert len(diffraction) == 8
    assert everything.val_samples.size == 0
    assert everything.val_dataloader() == []


def test_a_test_split_lit_by_a_brighter_probe_reaches_the_network_in_train_units(
    make_config: Any, tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    # The same scan, simulated with a probe twice as strong: patterns twice as large.
    with np.load(tiny_split[1]) as npz:
        arrays = {key: npz[key] for key in npz.files if key != "_metadata"}
        arrays["probeGuess"] = npz["probeGuess"] * 2
        arrays["diffraction"] = npz["diffraction"] * 2
    brighter = tmp_path / "brighter_test.npz"
    np.savez(brighter, **arrays)
    same = PtychoDataModule(make_config())
    same.setup()
    bright = PtychoDataModule(make_config(test_path=brighter))
    bright.setup()

    assert same.test_input_gain == 1.0
    assert bright.test_input_gain == pytest.approx(0.5)
    np.testing.assert_allclose(bright.network_test_inputs(), same.network_test_inputs(), rtol=1e-6)
    assert any("as bright as the train split's" in note for note in bright.notes)
