"""Files written the way PtychoPINN writes them train, with every conversion in train.log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import load_split
from worker.training import train
from worker.training.data import PtychoDataModule


def _as_ptychopinn_writes(source: Path, target: Path, nphotons: float) -> Path:
    """diff3d holding raw counts (intensities), patterns last, PtychoPINN's metadata JSON."""
    split = load_split(source)
    assert split.intensity_scale is not None
    counts = np.rint((split.diffraction.astype(np.float64) * split.intensity_scale) ** 2)
    with np.load(source) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("diffraction", "_metadata", "Y")}
    metadata = {
        "schema_version": "1.0.0",
        "physics_parameters": {"nphotons": nphotons, "N": split.N, "gridsize": 1},
    }
    np.savez_compressed(
        target,
        diff3d=np.moveaxis(counts, 0, -1).astype(np.float32),
        _metadata=np.array(json.dumps(metadata)),
        **arrays,
    )
    return target


@pytest.mark.slow  # real training
def test_ptychopinn_file_with_intensities_trains_and_logs_the_conversion(
    tiny_split: tuple[Path, Path], make_config: Any, tmp_path: Path
) -> None:
    train_path = _as_ptychopinn_writes(tiny_split[0], tmp_path / "train.npz", 1e5)
    test_path = _as_ptychopinn_writes(tiny_split[1], tmp_path / "test.npz", 1e5)
    config = make_config(train_path=train_path, test_path=test_path, epochs=1, logger="none")
    result = train(config)
    assert result["status"] == "succeeded"
    assert result["metrics"]["amplitude_mae"] is not None
    log = (config.out_dir / "train.log").read_text()
    for name in ("train.npz", "test.npz"):
        assert f"{name}: diffraction read from 'diff3d'" in log
        assert f"{name}: diffraction stored patterns-last" in log
        assert f"{name}: diffraction holds intensities (by photon quantum 1): converted" in log
    # Raw counts: the scale is 1, and the counts agree with the job's dose: no warning.
    assert "intensity_scale=1\n" in log
    assert "WARNING" not in log
    assert "probe scaled by" in log


def test_dose_that_disagrees_with_the_file_is_warned_about(
    tiny_split: tuple[Path, Path], make_config: Any, tmp_path: Path
) -> None:
    train_path = _as_ptychopinn_writes(tiny_split[0], tmp_path / "train.npz", 1e3)
    data = PtychoDataModule(make_config(train_path=train_path, nphotons=1e4))
    data.setup()
    warnings = [note for note in data.notes if note.startswith("WARNING")]
    assert any("nphotons=1000" in w and "the job says nphotons=10000" in w for w in warnings)
    # the counts themselves average about 1e5 per pattern
    assert any("mean counts per pattern" in w for w in warnings)
