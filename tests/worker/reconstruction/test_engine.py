"""pty-chi's forward model against our simulator, and the process state it must not touch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from app.study.contract import load_split
from app.study.forward import extract_patches, forward_intensity
from worker.reconstruction import ReconstructConfig
from worker.reconstruction.inputs import engine_inputs

pytest.importorskip("ptychi", reason="pty-chi (the ptychi package) is not installed")

from worker.reconstruction.ptychi_engine import PtychiSession


def _relative_error(predicted: np.ndarray, reference: np.ndarray) -> float:
    difference = predicted.astype(np.float64) - reference
    return float(np.linalg.norm(difference) / np.linalg.norm(reference))


def test_forward_model_with_the_truth_matches_the_simulated_data(
    bright_split: Path, tmp_path: Path
) -> None:
    split = load_split(bright_split)
    inputs = engine_inputs(split, None)
    config = ReconstructConfig(bright_split, tmp_path, accelerator="cpu")
    session = PtychiSession(config, inputs, initial_object=inputs.buffer_of(split.obj))

    predicted = session.predicted_intensities()

    # The stored (noisy) data, and the simulator's own noiseless intensities.
    assert _relative_error(predicted, inputs.intensities) < 0.02
    patches = extract_patches(split.obj, split.xcoords, split.ycoords, split.N)
    noiseless = forward_intensity(patches, split.probe) * inputs.intensity_scale**2
    assert _relative_error(predicted, noiseless) < 0.02


@pytest.mark.slow
def test_the_engine_leaves_torch_s_process_state_as_it_found_it(
    bright_split: Path, tmp_path: Path
) -> None:
    split = load_split(bright_split)
    inputs = engine_inputs(split, None)
    config = ReconstructConfig(bright_split, tmp_path, accelerator="cpu", threads=2)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    try:
        session = PtychiSession(config, inputs)
        losses = session.run(1)
        after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())

        assert len(losses) == 1
        assert np.isfinite(losses[0])
        assert torch.get_default_dtype() == torch.float64
        assert torch.empty(1).dtype == torch.float64
        assert getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None) is None
        assert torch.get_num_threads() == 1
        assert torch.equal(before[0], after[0])
        np.testing.assert_array_equal(before[1], after[1])
        assert before[2] == after[2]
    finally:
        torch.set_default_dtype(previous_dtype)
