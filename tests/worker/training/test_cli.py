"""`python -m worker.training`: results on success, a clear non-zero exit on bad data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import BAD_INPUT_EXIT
from worker.training.__main__ import main


def _copy_with(source: Path, target: Path, **changes: Any) -> Path:
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


@pytest.mark.slow
def test_contract_violation_exits_nonzero_naming_file_and_key(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, test_path = tiny_split
    bad = _copy_with(train_path, tmp_path / "bad.npz", probeGuess=np.ones((64, 64)))
    out = tmp_path / "job"
    command = [
        sys.executable, "-m", "worker.training", "--train", str(bad), "--test", str(test_path),
        "--out", str(out), "--gridsize", "1", "--nphotons", "1e5", "--epochs", "1",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == BAD_INPUT_EXIT, finished.stderr  # 65: not worth a retry
    assert str(bad) in finished.stderr
    assert "'probeGuess'" in finished.stderr
    assert "Traceback" not in finished.stderr
    log = (out / "train.log").read_text()
    assert "ERROR bad data" in log
    assert str(bad) in log
    assert "'probeGuess'" in log
    assert not (out / "result.json").exists()


@pytest.mark.slow
def test_missing_file_exits_nonzero_and_is_logged(
    tiny_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "patched_test.npz"
    out = tmp_path / "job"
    args = ["--train", str(tiny_split[0]), "--test", str(missing), "--out", str(out),
            "--gridsize", "2", "--nphotons", "1e5"]  # fmt: skip
    assert main(args) == 2
    assert str(missing) in capsys.readouterr().err
    assert str(missing) in (out / "train.log").read_text()


@pytest.mark.slow
def test_cli_trains_and_writes_result_json(
    tiny_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "job"
    args = ["--train", str(tiny_split[0]), "--test", str(tiny_split[1]), "--out", str(out),
            "--gridsize", "1", "--nphotons", "1e5", "--epochs", "1", "--logger", "none",
            "--accelerator", "cpu", "--no-deterministic", "--seed", "7"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "succeeded"
    assert result["epochs_completed"] == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["final_loss"] == result["final_loss"]
    saved = json.loads(json.dumps(result))
    assert saved["bundle_path"] == "model_bundle.pt"
