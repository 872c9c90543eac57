"""Tiny simulated study data shared by the training tests (read-only; outputs go to tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.study.simulate import SimulationConfig, simulate_phase_c
from worker.training import TrainConfig

DOSE = 1e5


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train, test) NPZ paths: N = 64, 128 random positions over a 176-pixel object."""
    root = tmp_path_factory.mktemp("phase_c")
    config = SimulationConfig(patch_size=64, object_size=176, n_positions=128, doses=(DOSE,))
    simulate_phase_c(config, root, workers=1)
    dose_dir = root / "dose_100000"
    return dose_dir / "patched_train.npz", dose_dir / "patched_test.npz"


@pytest.fixture
def make_config(tiny_split: tuple[Path, Path], tmp_path: Path):  # type: ignore[no-untyped-def]
    """TrainConfig factory for the tiny split, writing under this test's tmp_path."""
    train_path, test_path = tiny_split

    def make(**overrides: object) -> TrainConfig:
        values: dict[str, object] = {
            "train_path": train_path,
            "test_path": test_path,
            "out_dir": tmp_path / "job",
            "gridsize": 1,
            "nphotons": DOSE,
            "epochs": 2,
            "n_groups": 48,
            "accelerator": "cpu",
            "lr": 3e-3,
        }
        values.update(overrides)
        return TrainConfig(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models train faster on one thread, and do not stall when other jobs hold the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
