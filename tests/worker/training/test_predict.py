"""`python -m worker.training predict`: a bundle reconstructs a scan that has no ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker.training import train
from worker.training.__main__ import main
from worker.training.bundle import load_bundle
from worker.training.data import PtychoDataModule, input_scale
from worker.training.evaluate import reconstruct


@pytest.fixture(scope="module")
def trained(tiny_split: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch gridsize-2 job's bundle."""
    from worker.training import TrainConfig

    out = tmp_path_factory.mktemp("job")
    config = TrainConfig(
        train_path=tiny_split[0], test_path=tiny_split[1], out_dir=out, gridsize=2,
        nphotons=1e5, epochs=1, n_groups=24, accelerator="cpu", logger="none",
    )  # fmt: skip
    train(config)
    return out / "model_bundle.pt"


def _without_truth(source: Path, target: Path) -> Path:
    with np.load(source) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("objectGuess", "Y")}
    np.savez(target, **arrays)
    return target


@pytest.mark.slow  # real training
def test_scan_without_ground_truth_is_reconstructed(
    trained: Path, tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    data = _without_truth(tiny_split[1], tmp_path / "scan.npz")
    out = tmp_path / "rec.npz"
    assert main(["predict", "--bundle", str(trained), "--data", str(data), "--out", str(out)]) == 0
    with np.load(out) as npz:
        image, coverage = npz["reconstruction"], npz["coverage"]
        x, y = npz["xcoords"], npz["ycoords"]
        metadata = json.loads(str(npz["_metadata"]))
    assert image.dtype == np.complex64
    assert coverage.shape == image.shape
    # the canvas is the scan's extent: every position sits inside, N/2 from the border
    assert x.min() >= 32
    assert y.min() >= 32
    assert x.max() <= image.shape[1] - 32
    assert y.max() <= image.shape[0] - 32
    assert coverage[np.rint(y).astype(int), np.rint(x).astype(int)].min() > 0
    assert np.isfinite(image).all()
    assert np.abs(image[coverage > 0]).mean() > 0
    assert metadata["has_ground_truth"] is False
    assert metadata["gridsize"] == 2
    assert metadata["stitching"]["method"] == "ours"
    assert len(metadata["bundle_sha256"]) == 64


@pytest.mark.slow  # real training
def test_prediction_matches_the_jobs_own_test_reconstruction(
    trained: Path, tiny_split: tuple[Path, Path], tmp_path: Path, make_config: Any
) -> None:
    out = tmp_path / "rec.npz"
    args = ["predict", "--bundle", str(trained), "--data", str(tiny_split[1]), "--out", str(out),
            "--stitching", "ptychopinn", "--stitch-crop", "24"]  # fmt: skip
    assert main(args) == 0
    model, _job = load_bundle(trained)
    data = PtychoDataModule(make_config(gridsize=2, n_groups=24))
    data.setup()
    # prediction normalises the scan's amplitudes by their own statistics
    model.hparams["input_scale"] = input_scale(
        data.test_split.diffraction, model.hparams["architecture"]
    )
    expected = reconstruct(model, data, "ptychopinn", 24)
    with np.load(out) as npz:
        image = npz["reconstruction"]
        assert json.loads(str(npz["_metadata"]))["has_ground_truth"] is True
    positions = data.test_samples.positions.reshape(-1, 2)
    rows = slice(int(np.floor(positions[:, 1].min())), int(np.ceil(positions[:, 1].max())) + 1)
    cols = slice(int(np.floor(positions[:, 0].min())), int(np.ceil(positions[:, 0].max())) + 1)
    np.testing.assert_allclose(image[rows, cols], expected.rec, atol=1e-5)


@pytest.mark.slow  # real training
def test_bad_data_exits_2_naming_the_file(trained: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.npz"
    finished = subprocess.run(
        [sys.executable, "-m", "worker.training", "predict", "--bundle", str(trained),
         "--data", str(missing)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 2, finished.stderr
    assert str(missing) in finished.stderr
    assert "Traceback" not in finished.stderr
