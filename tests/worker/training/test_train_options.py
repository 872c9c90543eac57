"""train() with the science options: result blocks, validation, weights, stitching, warnings."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from worker.training import train
from worker.training.callbacks import TrainLog
from worker.training.watch import ReferenceWatch


@pytest.mark.slow  # real training
def test_result_holds_both_blocks_baselines_skill_and_how_it_was_made(make_config: Any) -> None:
    config = make_config(epochs=1, logger="none")
    result = train(config)
    assert json.loads((config.out_dir / "result.json").read_text()) == result
    assert result["weights"] == "final"
    assert result["stitching"]["method"] == "ours"
    assert set(result["baselines"]) == {"flat", "input_only"}
    assert set(result["skill_vs_flat"]) == {"ours", "ptychopinn"}
    assert result["metrics_ptychopinn"]["phase_ssim"] is not None
    # validation comes from the train split and is reported beside its ground-truth floor
    assert result["val_loss"] is not None
    assert result["reference_val_loss"] is not None
    log = (config.out_dir / "train.log").read_text()
    assert "val_samples=2 " in log
    for line in ("metrics ", "metrics_ptychopinn ", "baseline flat ours ",
                 "baseline input_only ptychopinn ", "skill_vs_flat ptychopinn "):  # fmt: skip
        assert f"Z {line}" in log


@pytest.mark.slow  # real training
def test_unet_without_validation_best_weights_and_ptychopinn_stitching(
    make_config: Any,
) -> None:
    config = make_config(
        epochs=1, logger="none", architecture="unet", inputs="amplitudes+backprop",
        val_fraction=0.0, keep_weights="best", stitching="ptychopinn", stitch_crop=24,
    )  # fmt: skip
    result = train(config)
    assert result["status"] == "succeeded"
    assert result["val_loss"] is None
    assert result["reference_val_loss"] is None
    assert result["weights"] == "best"
    assert result["stitching"] == {
        "method": "ptychopinn", "weight": "central_crop", "crop": 24, "phase_sync": "none",
    }  # fmt: skip
    assert "val_samples=0 " in (config.out_dir / "train.log").read_text()


def test_validation_below_the_reference_is_warned_once(tmp_path: Path) -> None:
    log = TrainLog(tmp_path / "train.log")
    watch = ReferenceWatch(log, reference=-100.0)
    for epoch, loss in enumerate([-90.0, -101.0, -102.0]):
        trainer = SimpleNamespace(callback_metrics={"val_loss": loss}, current_epoch=epoch)
        watch.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    text = log.path.read_text()
    assert watch.crossed_at_epoch == 2
    assert text.count("WARNING") == 1
    assert "epoch 2: validation loss -101 is below the ground truth's reference loss -100" in text


def test_the_warning_says_when_the_reference_rests_on_an_estimated_probe(tmp_path: Path) -> None:
    log = TrainLog(tmp_path / "train.log")
    watch = ReferenceWatch(log, reference=-100.0, estimated_probe=True)
    trainer = SimpleNamespace(callback_metrics={"val_loss": -101.0}, current_epoch=0)
    watch.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    text = log.path.read_text()
    assert "the probe's units were estimated" in text
    assert "the network is fitting the noise" not in text
