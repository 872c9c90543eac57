"""The study commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from app.cli import study
from app.study.simulate import PhaseCResult


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    study.register(app)
    return app


runner = CliRunner()


def test_validate_prints_one_line_per_file_and_fails_on_any_broken(
    cli: typer.Typer, small_phase_c: PhaseCResult, tmp_path: Path
) -> None:
    good = small_phase_c.root / "dose_1000/patched_train.npz"
    result = runner.invoke(cli, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK   {good}: n=")
    broken = tmp_path / "broken.npz"
    with np.load(good) as npz:
        arrays = {key: npz[key] for key in npz.files if key != "probeGuess"}
    np.savez(broken, **arrays)
    result = runner.invoke(cli, ["validate", str(good), str(broken)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("OK")
    assert lines[1] == f"FAIL {broken}: key 'probeGuess': expected a required array, got missing"


def test_simulate_writes_phase_c(cli: typer.Typer, tmp_path: Path) -> None:
    args = ["simulate", "--out", str(tmp_path), "--doses", "1e3,1e4", "--n-positions", "30",
            "--patch-size", "32", "--object-size", "96", "--scan", "jittered",
            "--seed", "5"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run_manifest.json").read_text())
    assert manifest["config"]["scan"] == "jittered"
    assert manifest["config"]["seed"] == 5
    for dose in ("dose_1000", "dose_10000"):
        assert (tmp_path / dose / "patched_test.npz").is_file()
    assert "dose 10000:" in result.output


@pytest.mark.parametrize(
    "extra",
    [["--preset", "huge"], ["--doses", "1e3,abc"], ["--patch-size", "33"],
     ["--probe", "/nonexistent/probe.npz"]],
)  # fmt: skip
def test_simulate_refuses_bad_options(cli: typer.Typer, tmp_path: Path, extra: list[str]) -> None:
    result = runner.invoke(cli, ["simulate", "--out", str(tmp_path), *extra])
    assert result.exit_code != 0
    assert not (tmp_path / "run_manifest.json").exists()


def test_overlap_exits_zero_with_rejections(
    cli: typer.Typer, small_phase_c: PhaseCResult, tmp_path: Path
) -> None:
    args = ["overlap", "--phase-c-root", str(small_phase_c.root), "--out", str(tmp_path),
            "--doses", "1e3", "--min-acceptance", "0.10"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "overlap_manifest.json").read_text())["records"]
    assert {r["status"] for r in records} == {"accepted", "rejected"}
    assert "1 views written" in result.output


@pytest.mark.parametrize(
    ("extra", "root"),
    [([], "missing"), (["--doses", "7e3"], None), (["--doses", "x"], None),
     (["--min-acceptance", "2"], None), (["--views", "dense,wide"], None)],
)  # fmt: skip
def test_overlap_bad_input_is_non_zero(
    cli: typer.Typer,
    small_phase_c: PhaseCResult,
    tmp_path: Path,
    extra: list[str],
    root: str | None,
) -> None:
    phase_c = tmp_path / root if root else small_phase_c.root
    result = runner.invoke(cli, ["overlap", "--phase-c-root", str(phase_c), "--out",
                                 str(tmp_path / "d"), *extra])  # fmt: skip
    assert result.exit_code != 0
    assert not (tmp_path / "d" / "overlap_manifest.json").exists()


def test_demo_data_keeps_dense_and_rejects_sparse_at_every_dose(
    cli: typer.Typer, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["demo-data", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "phase_d/overlap_manifest.json").read_text())
    for dose in (1000, 10000, 100000):
        assert (tmp_path / f"phase_c/dose_{dose}/patched_train.npz").is_file()
        assert (tmp_path / f"phase_d/dose_{dose}/dense/dense_train.npz").is_file()
        assert not list((tmp_path / "phase_d").glob(f"dose_{dose}/sparse/*.npz"))
    statuses = {(r["dose"], r["view"], r["status"]) for r in manifest["records"]}
    assert statuses == {
        (d, v, "accepted" if v == "dense" else "rejected")
        for d in (1e3, 1e4, 1e5)
        for v in ("dense", "sparse")
    }
