"""reconstruct(): an LSQML job on demo data, end to end, and a stop between chunks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import load_split
from worker.reconstruction import ReconstructConfig
from worker.training.h5_inputs import load_input

pytest.importorskip("ptychi", reason="pty-chi (the ptychi package) is not installed")

from worker.reconstruction.runner import ReconstructionDiverged, reconstruct

pytestmark = pytest.mark.slow
# The fewest that still clear the bars with a margin on the demo's 151 test positions
# (measured: phase correlation 0.93, phase MAE 0.071 against the flat object's 0.190).
EPOCHS = 20
BATCH = 16


class StopAfterFirst:
    """A ProgressReporter that asks to stop as soon as it has heard of one epoch."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        self.reports.append({"epoch": epoch, "epochs": epochs, "step": step, "loss": loss})

    def should_stop(self) -> bool:
        return bool(self.reports)


@pytest.fixture(scope="module")
def lsqml_job(
    demo_test_split: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReconstructConfig, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lsqml")
    config = ReconstructConfig(
        demo_test_split, out, epochs=EPOCHS, batch_size=BATCH, accelerator="cpu", label="demo"
    )
    return config, reconstruct(config)


def test_lsqml_at_dose_1e5_reconstructs_the_phase(
    lsqml_job: tuple[ReconstructConfig, dict[str, Any]],
) -> None:
    _, result = lsqml_job
    metrics, flat = result["metrics"], result["baselines"]["flat"]["ours"]

    assert result["status"] == "succeeded"
    assert metrics["phase_correlation"] >= 0.9
    assert metrics["phase_mae"] <= 0.5 * flat["phase_mae"]
    assert result["skill_vs_flat"]["ours"]["phase_correlation"] >= 0.9


def test_the_result_has_a_training_job_s_shape(
    lsqml_job: tuple[ReconstructConfig, dict[str, Any]],
) -> None:
    config, result = lsqml_job

    assert json.loads((config.out_dir / "result.json").read_text()) == result
    assert (result["engine"], result["algorithm"]) == ("lsqml", "LSQML")
    assert (result["num_epochs"], result["epochs_completed"]) == (EPOCHS, EPOCHS)
    assert [row["epoch"] for row in result["history"]] == list(range(1, EPOCHS + 1))
    assert result["final_loss"] == result["history"][-1]["loss"]
    assert result["device"] == "cpu"
    assert result["duration_s"] > 0
    assert set(result["metrics_ptychopinn"]) >= {"phase_ms_ssim", "amplitude_frc50"}
    assert set(result["skill_vs_flat"]) == {"ours", "ptychopinn"}
    for key in ("reconstruction_npz", "product_h5", "reconstruction_png"):
        assert (config.out_dir / result[key]).is_file(), key
    saved = np.load(config.out_dir / result["reconstruction_npz"])
    assert saved["loss_history"].shape == (EPOCHS,)
    assert saved["positions"].shape == (load_split(config.input_npz).n, 2)
    log = config.resolved_log_path.read_text()
    assert f"epoch {EPOCHS}/{EPOCHS} loss=" in log
    assert "skill_vs_flat ours" in log


def test_the_product_file_reads_back_as_the_split_s_probe_object_and_positions(
    lsqml_job: tuple[ReconstructConfig, dict[str, Any]],
) -> None:
    config, result = lsqml_job
    split = load_split(config.input_npz)
    saved = np.load(config.out_dir / result["reconstruction_npz"])

    read = load_input(config.input_npz, product=config.out_dir / result["product_h5"])

    np.testing.assert_allclose(read.xcoords, split.xcoords, atol=1e-9)
    np.testing.assert_allclose(read.ycoords, split.ycoords, atol=1e-9)
    np.testing.assert_array_equal(read.obj, saved["object"])
    # The probe was not refined: it comes back as the file's own, in the file's units.
    np.testing.assert_allclose(read.probe, split.probe, rtol=1e-5, atol=1e-7)


def test_a_stop_request_after_the_first_chunk_keeps_the_partial_result(
    demo_test_split: Path, tmp_path: Path
) -> None:
    config = ReconstructConfig(demo_test_split, tmp_path / "job", epochs=5, accelerator="cpu")
    reporter = StopAfterFirst()

    result = reconstruct(config, reporter=reporter)

    assert result["status"] == "stopped"
    assert (result["epochs_completed"], result["num_epochs"]) == (1, 5)
    assert result["stopped"]["reason"] == "stop requested"
    assert [r["epoch"] for r in reporter.reports] == [1]
    assert reporter.reports[0]["epochs"] == 5
    assert reporter.reports[0]["step"] == 2
    assert json.loads((config.out_dir / "result.json").read_text())["status"] == "stopped"
    assert np.load(config.out_dir / "reconstruction.npz")["loss_history"].shape == (1,)
    assert result["metrics"]["phase_mae"] > 0


def test_should_stop_alone_stops_the_job_too(demo_test_split: Path, tmp_path: Path) -> None:
    config = ReconstructConfig(demo_test_split, tmp_path / "job", epochs=3, accelerator="cpu")

    result = reconstruct(config, should_stop=lambda: True)

    assert (result["status"], result["epochs_completed"]) == ("stopped", 1)


@pytest.mark.parametrize(
    ("engine", "algorithm"), [("epie", "ePIE"), ("rpie", "rPIE"), ("dm", "DM")]
)
def test_every_engine_runs_and_is_named_as_the_study_names_it(
    demo_test_split: Path, tmp_path: Path, engine: str, algorithm: str
) -> None:
    config = ReconstructConfig(
        demo_test_split, tmp_path / engine, engine=engine, epochs=2, batch_size=BATCH
    )

    result = reconstruct(config)

    assert (result["status"], result["algorithm"], result["epochs_completed"]) == (
        "succeeded", algorithm, 2,
    )  # fmt: skip
    assert result["recipe"]["batch_size"] == (None if engine == "dm" else BATCH)


def test_a_run_that_blows_up_fails_with_its_epoch_and_keeps_no_result(
    demo_test_split: Path, tmp_path: Path
) -> None:
    # rPIE sums each batch's full-step updates; 96 overlapping patterns at once overshoot.
    config = ReconstructConfig(demo_test_split, tmp_path / "job", engine="rpie", epochs=12)

    with pytest.raises(ReconstructionDiverged, match=r"diverged at epoch \d+: the loss grew"):
        reconstruct(config)

    assert "ERROR ReconstructionDiverged" in config.resolved_log_path.read_text()
    assert not (config.out_dir / "result.json").exists()
