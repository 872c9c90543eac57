"""The assessment every job reports: two metric blocks, two baselines, skill vs flat."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from worker.training.assess import BASELINES, assess, flat_level, skill
from worker.training.data import PtychoDataModule
from worker.training.metrics import METRIC_KEYS
from worker.training.metrics_ptychopinn import PTYCHOPINN_KEYS
from worker.training.runner import build_model


def test_skill_is_one_when_perfect_zero_at_flat_and_negative_when_worse() -> None:
    flat = {"amplitude_mae": 0.2, "phase_mae": 0.4, "amplitude_ssim": 0.5, "phase_ssim": 0.5,
            "phase_correlation": 0.0}  # fmt: skip
    perfect = {"amplitude_mae": 0.0, "phase_mae": 0.0, "amplitude_ssim": 1.0, "phase_ssim": 1.0,
               "phase_correlation": 1.0}  # fmt: skip
    worse = {"amplitude_mae": 0.3, "phase_mae": 0.4, "amplitude_ssim": 0.25, "phase_ssim": 0.75,
             "phase_correlation": -0.5}  # fmt: skip
    assert skill(perfect, flat, "ours") == {k: 1.0 for k in flat}
    assert skill(flat, flat, "ours") == {k: 0.0 for k in flat}
    assert skill(worse, flat, "ours") == {
        "amplitude_mae": pytest.approx(-0.5), "phase_mae": 0.0, "amplitude_ssim": -0.5,
        "phase_ssim": 0.5, "phase_correlation": -0.5,
    }  # fmt: skip


def test_flat_level_matches_the_counts_through_the_probe(make_config: Any) -> None:
    data = PtychoDataModule(make_config())
    data.setup()
    level = flat_level(data)
    probe = data.test_probe.astype(np.complex128)
    predicted = np.sum(np.abs(np.fft.fft2(level * probe, norm="ortho")) ** 2)
    measured = np.mean(np.sum(data.test_split.diffraction.astype(np.float64) ** 2, (1, 2)))
    assert predicted == pytest.approx(measured)
    # the object's mean transmission over the scan is of that order
    assert 0.3 < level < 1.0


@pytest.mark.parametrize("stitching", ["ours", "ptychopinn"])
def test_assessment_scores_model_and_baselines_in_both_conventions(
    make_config: Any, stitching: str
) -> None:
    config = make_config(architecture="unet", inputs="amplitudes+backprop")
    data = PtychoDataModule(config)
    data.setup()
    torch.manual_seed(0)
    result = assess(build_model(config, data), data, stitching, 20)
    assert set(result.metrics["ours"]) == set(METRIC_KEYS)
    assert set(result.metrics["ptychopinn"]) == set(PTYCHOPINN_KEYS)
    assert set(result.baselines) == set(BASELINES)
    for blocks in result.baselines.values():
        assert set(blocks["ours"]) == set(METRIC_KEYS)
        assert set(blocks["ptychopinn"]) == set(PTYCHOPINN_KEYS)
    # the input maps alone carry the phase; a flat object carries none
    assert result.baselines["input_only"]["ours"]["phase_correlation"] > 0.5
    assert abs(result.baselines["flat"]["ours"]["phase_correlation"]) < 1e-9
    assert result.stitching["method"] == stitching
    flat = result.baselines["flat"]["ptychopinn"]
    expected = (result.metrics["ptychopinn"]["phase_mae"] - flat["phase_mae"]) / -flat["phase_mae"]
    assert result.skill["ptychopinn"]["phase_mae"] == pytest.approx(expected)
    assert all(math.isfinite(v) for v in result.metrics["ours"].values())
