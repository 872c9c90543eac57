"""Resuming: a job interrupted after epoch k of n continues at epoch k+1, its history kept.

The trainer runs as `python -m worker.training`, as a SLURM job runs it, and is killed or
asked to stop through its stop file; a second run with --resume finishes the job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from worker.training.progress_file import read_progress_file

pytestmark = pytest.mark.slow

EPOCHS = 4


def _config(tiny_split: tuple[Path, Path], out: Path) -> Path:
    train_path, test_path = tiny_split
    config = {
        "train_path": str(train_path),
        "test_path": str(test_path),
        "out_dir": str(out),
        "gridsize": 1,
        "nphotons": 1e5,
        "epochs": EPOCHS,
        "n_groups": 32,
        "batch_size": 8,
        "accelerator": "cpu",
        "logger": "csv",
        "architecture": "unet",
    }
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(config))
    return path


def _trainer(config: Path, out: Path, *extra: str) -> list[str]:
    files = ["--progress-file", str(out / "progress.json"), "--stop-file", str(out / "stop")]
    return [sys.executable, "-m", "worker.training", "--config", str(config), *files, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, f"the trainer ended ({process.returncode}) before {path}"
        assert time.monotonic() < deadline, f"no {path} after {timeout_s} s"
        time.sleep(0.01)


def _epochs_in_checkpoint(out: Path) -> tuple[int, list[dict[str, Any]]]:
    """Complete epochs in last.ckpt (Lightning stores the 0-based epoch) and their history."""
    checkpoint = torch.load(
        out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    return checkpoint["epoch"] + 1, checkpoint["callbacks"]["EpochHistory"]["history"]


def _resume(config: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        _trainer(config, out, "--resume"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


def _epochs_logged_after_resuming(out: Path) -> list[str]:
    """The "k/n" of each `epoch k/n ...` line in train.log after the resume line."""
    log = (out / "train.log").read_text().splitlines()
    resumed_at = next(
        i for i, line in enumerate(log) if "resuming from checkpoints/last.ckpt" in line
    )
    return [line.split()[2] for line in log[resumed_at:] if line.split()[1] == "epoch"]


def test_killed_at_epoch_k_resumes_at_k_plus_1_keeping_history(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "job"
    config = _config(tiny_split, out)
    first = subprocess.Popen(_trainer(config, out), env=_env())
    _wait_for_file(out / "checkpoints" / "last.ckpt", first)
    first.send_signal(signal.SIGKILL)  # as the OOM killer, a lost node or scancel's SIGKILL
    first.wait(timeout=30)
    k, history = _epochs_in_checkpoint(out)
    assert 1 <= k < EPOCHS
    assert not (out / "result.json").exists()

    result = _resume(config, out)

    assert result["status"] == "succeeded"
    assert result["epochs_completed"] == EPOCHS
    assert [row["epoch"] for row in result["history"]] == list(range(1, EPOCHS + 1))
    assert all(row["complete"] for row in result["history"])
    assert result["history"][:k] == history  # the killed attempt's epochs, as it recorded them
    assert _epochs_logged_after_resuming(out) == [f"{e}/{EPOCHS}" for e in range(k + 1, EPOCHS + 1)]
    progress = read_progress_file(out / "progress.json")
    assert progress is not None
    assert progress.epoch == EPOCHS
    assert progress.epochs == EPOCHS


def test_stopped_job_keeps_its_partial_result_and_resumes_after_its_last_full_epoch(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "job"
    config = _config(tiny_split, out)
    first = subprocess.Popen(_trainer(config, out), env=_env())
    _wait_for_file(out / "checkpoints" / "last.ckpt", first)
    (out / "stop").touch()  # what a cancel or a worker's stop request does
    assert first.wait(timeout=300) == 0

    stopped = json.loads((out / "result.json").read_text())
    assert stopped["status"] == "stopped"
    assert (out / stopped["reconstruction_png"]).read_bytes()[:4] == b"\x89PNG"
    k, _ = _epochs_in_checkpoint(out)
    # A stop inside an epoch leaves last.ckpt at the last complete one.
    assert k == stopped["epochs_completed"] < EPOCHS

    (out / "stop").unlink()
    result = _resume(config, out)

    assert result["status"] == "succeeded"
    assert [row["epoch"] for row in result["history"]] == list(range(1, EPOCHS + 1))
    assert all(row["complete"] for row in result["history"])
    assert _epochs_logged_after_resuming(out)[0] == f"{k + 1}/{EPOCHS}"
