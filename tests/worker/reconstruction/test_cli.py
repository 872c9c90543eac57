"""`python -m worker.reconstruction`: bad data exits 65 naming the file; a run writes results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.study.contract import BAD_INPUT_EXIT
from worker.reconstruction.__main__ import main


def test_a_split_without_diffraction_exits_65_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.npz"
    np.savez(broken, probeGuess=np.ones((8, 8), np.complex64))

    code = main(["--input", str(broken), "--out", str(tmp_path / "out")])

    assert code == BAD_INPUT_EXIT == 65
    error = capsys.readouterr().err
    assert "broken.npz" in error
    assert "'diffraction'" in error


def test_a_missing_file_and_a_bad_option_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = main(["--input", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "out")])
    bad = main(["--input", str(tmp_path / "nope.npz"), "--out", str(tmp_path), "--epochs", "0"])

    assert (missing, bad) == (2, 2)
    error = capsys.readouterr().err
    assert "nope.npz" in error
    assert "ReconstructConfig.epochs" in error


@pytest.mark.slow
def test_a_run_from_the_command_line_writes_its_result(
    demo_test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ptychi", reason="pty-chi (the ptychi package) is not installed")
    out = tmp_path / "out"
    argv = ["--input", str(demo_test_split), "--out", str(out), "--epochs", "2"]

    code = main([*argv, "--accelerator", "cpu", "--progress-file", str(tmp_path / "p.json")])

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["epochs_completed"]) == ("succeeded", 2)
    assert json.loads((out / "result.json").read_text())["algorithm"] == "LSQML"
