"""A link swapped into a running job's folder: the job fails with a path refusal, and
nothing is written outside the data root (checked by listing the outside folder)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from app.errors import PathRefused
from app.study.npz import ReadLimits, read_limits
from app.study.simulate import SimulationConfig, simulate_phase_c
from worker.training import TrainConfig
from worker.training.runner import train

pytestmark = pytest.mark.slow  # real training


def _swap_when_checkpointed(job: Path, target: Path, outside: Path) -> threading.Thread:
    """Once epoch 1's checkpoint exists, replace the folder `target` by a link to `outside`."""

    def swap() -> None:
        deadline = time.monotonic() + 120
        while not (job / "checkpoints" / "last.ckpt").exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        target.rename(target.with_name(target.name + ".moved"))
        target.symlink_to(outside, target_is_directory=True)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("swapped", ["checkpoints", "logs/csv", "."])
def test_a_link_swapped_in_mid_training_fails_the_job_and_nothing_leaves_the_root(
    tmp_path: Path, swapped: str
) -> None:
    data_root = tmp_path / "data"
    config = SimulationConfig(patch_size=64, object_size=176, n_positions=96, doses=(1e5,))
    simulate_phase_c(config, data_root / "phase_c", workers=1)
    split = data_root / "phase_c" / "dose_100000"
    job = data_root / "runs" / "1" / "job"
    outside = tmp_path / "outside"
    outside.mkdir()
    train_config = TrainConfig(
        train_path=split / "patched_train.npz", test_path=split / "patched_test.npz",
        out_dir=job, gridsize=1, nphotons=1e5, epochs=6, n_groups=32, batch_size=16,
        accelerator="cpu", early_stop_patience=0, logger="csv",
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    swapper = _swap_when_checkpointed(job, (job / swapped).resolve(), outside)
    try:
        with read_limits(ReadLimits(root=data_root)), pytest.raises(PathRefused) as refused:
            train(train_config)
    finally:
        torch.set_num_threads(threads)
        swapper.join(timeout=30)
    assert "symlink" in str(refused.value) or "replaced" in str(refused.value), refused.value
    assert sorted(os.listdir(outside)) == []  # nothing written through the link
