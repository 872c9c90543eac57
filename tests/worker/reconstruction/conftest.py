"""Tiny simulated splits for the reconstruction tests (read-only; outputs go to tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.study.demo_data import make_demo_data
from app.study.simulate import SimulationConfig, simulate_phase_c

DOSE = 1e5
# Bright enough that shot noise (≈ 1/√dose per pattern) stays far below the 2 % bound.
BRIGHT_DOSE = 1e9


@pytest.fixture(scope="session")
def demo_test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo study's dose-1e5 test split: N = 64, 151 positions on a 336² object."""
    root = tmp_path_factory.mktemp("demo")
    phase_c, _ = make_demo_data(root, doses=(DOSE,), n_positions=300)
    return phase_c / "dose_100000" / "patched_test.npz"


@pytest.fixture(scope="session")
def bright_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nearly noiseless test split: N = 64, 48 random positions over a 176² object."""
    root = tmp_path_factory.mktemp("bright")
    config = SimulationConfig(patch_size=64, object_size=176, n_positions=96, doses=(BRIGHT_DOSE,))
    simulate_phase_c(config, root, workers=1)
    return root / f"dose_{int(BRIGHT_DOSE)}" / "patched_test.npz"


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The engine's default on the CPU; and it does not stall when other jobs hold the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
