"""train(config): artifacts, result fields, loggers, determinism and cooperative stopping."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from worker.training import train
from worker.training.bundle import load_bundle, sha256_of
from worker.training.data import PtychoDataModule
from worker.training.evaluate import predict_patches
from worker.training.metrics import METRIC_KEYS

pytestmark = pytest.mark.slow  # real Lightning training

RESULT_KEYS = {
    "status", "final_loss", "epochs_completed", "checkpoint_path", "bundle_path",
    "bundle_sha256", "bundle_size_bytes", "val_loss", "duration_s", "device", "metrics",
}  # fmt: skip


def _epoch_losses(result: dict[str, Any]) -> list[float]:
    return [row["train_loss"] for row in result["history"]]


def test_gridsize1_writes_every_artifact_and_csv_metrics(make_config: Any) -> None:
    config = make_config(epochs=3, logger="csv")
    result = train(config)
    out = config.out_dir
    assert result.keys() >= RESULT_KEYS
    assert result["status"] == "succeeded"
    assert result["epochs_completed"] == 3
    assert set(result["metrics"]) == set(METRIC_KEYS)
    assert json.loads((out / "result.json").read_text()) == result
    assert (out / result["checkpoint_path"]).is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()
    bundle = out / result["bundle_path"]
    assert result["bundle_sha256"] == sha256_of(bundle)
    assert result["bundle_size_bytes"] == bundle.stat().st_size
    assert (out / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    losses = _epoch_losses(result)
    assert losses[-1] < losses[0], losses
    # The ground truth's own loss on the test split is the floor the training heads for.
    assert result["reference_val_loss"] < result["val_loss"]
    with (out / "logs" / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({int(r["epoch"]) for r in rows}) == [0, 1, 2]
    assert any(r.get("train_loss") for r in rows)
    assert any(r.get("val_loss") for r in rows)
    log = (out / "train.log").read_text()
    assert "epoch 3/3" in log
    assert "done status=succeeded" in log


def test_gridsize2_learns_and_writes_tensorboard_events(make_config: Any) -> None:
    # The recipe's lr (1e-3): at 3e-3 this tiny gridsize-2 study overshoots.
    config = make_config(gridsize=2, epochs=3, lr=1e-3, logger="tensorboard")
    result = train(config)
    losses = _epoch_losses(result)
    assert losses[-1] < losses[0], losses
    assert result["val_loss"] < result["flat_val_loss"]
    events = list((config.out_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    assert events[0].stat().st_size > 0
    assert not list(config.out_dir.rglob("metrics.csv"))


def test_logger_none_writes_no_metric_logs(make_config: Any) -> None:
    config = make_config(epochs=1, logger="none")
    result = train(config)
    assert result["status"] == "succeeded"
    assert not (config.out_dir / "logs").exists()
    assert not list(config.out_dir.rglob("events.out.tfevents.*"))


def test_same_seed_deterministic_runs_give_identical_losses(
    make_config: Any, tmp_path: Path
) -> None:
    first = train(make_config(out_dir=tmp_path / "a", epochs=1, logger="none"))
    second = train(make_config(out_dir=tmp_path / "b", epochs=1, logger="none"))
    assert first["final_loss"] == second["final_loss"]
    assert first["val_loss"] == second["val_loss"]
    assert first["metrics"] == second["metrics"]


class _Recorder:
    """A reporter that keeps every report and never asks to stop."""

    def __init__(self) -> None:
        self.reports: list[dict[str, float]] = []

    def on_progress(self, **progress: float) -> None:
        self.reports.append(progress)

    def should_stop(self) -> bool:
        return False


def test_epochs_count_from_one_in_progress_log_checkpoints_and_result(make_config: Any) -> None:
    reporter = _Recorder()
    config = make_config(epochs=2, logger="none")
    result = train(config, reporter=reporter)
    assert {(r["epoch"], r["epochs"]) for r in reporter.reports} == {(1, 2), (2, 2)}
    assert (reporter.reports[-1]["epoch"], reporter.reports[-1]["epochs"]) == (2, 2)
    log = (config.out_dir / "train.log").read_text()
    assert "epoch 1/2" in log
    assert "epoch 2/2" in log
    assert "epoch 0/" not in log
    assert result["epochs_completed"] == 2
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    best = min(result["history"], key=lambda row: row["val_loss"])["epoch"]
    names = sorted(p.name for p in (config.out_dir / "checkpoints").glob("best-*.ckpt"))
    assert names == [f"best-epoch={best}.ckpt"]


class _StopAfter:
    """A reporter that records progress and asks to stop after `steps` polls."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.polls = 0
        self.reports: list[tuple[int, int, float]] = []

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        self.reports.append((epoch, step, loss))

    def should_stop(self) -> bool:
        self.polls += 1
        return self.polls >= self.steps


def test_reporter_gets_progress_and_can_stop_training(make_config: Any) -> None:
    reporter = _StopAfter(steps=2)
    config = make_config(epochs=5, logger="none")
    result = train(config, reporter=reporter)
    assert result["status"] == "stopped"
    assert result["epochs_completed"] == 0
    assert result["history"][0]["complete"] is False
    assert reporter.polls == 2
    epoch, step, loss = reporter.reports[-1]
    assert (epoch, step) == (1, 2)
    assert np.isfinite(loss)
    assert (config.out_dir / result["checkpoint_path"]).is_file()
    assert json.loads((config.out_dir / "result.json").read_text())["status"] == "stopped"


def test_bundle_reloads_to_the_same_predictions(make_config: Any) -> None:
    config = make_config(epochs=1, logger="none")
    result = train(config)
    model, saved_config = load_bundle(config.out_dir / result["bundle_path"])
    assert saved_config["gridsize"] == 1
    assert saved_config["seed"] == config.seed
    data = PtychoDataModule(config)
    data.setup()
    twice = predict_patches(model, data.test_samples.diffraction[:8])
    again, _ = load_bundle(config.out_dir / result["bundle_path"])
    np.testing.assert_array_equal(twice, predict_patches(again, data.test_samples.diffraction[:8]))
    assert not np.allclose(np.angle(twice), 0.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda(make_config: Any) -> None:
    result = train(make_config(accelerator="gpu", epochs=1, logger="none", gridsize=2))
    assert result["status"] == "succeeded"
    assert result["device"].startswith("cuda")


def test_training_beats_the_flat_objects_loss_and_records_its_recipe(make_config: Any) -> None:
    config = make_config(epochs=3, early_stop_patience=0)
    result = train(config)
    # The flat object's loss, computed before training: what a model that learned nothing
    # scores. Three short epochs already train below it.
    assert result["val_loss"] < result["flat_val_loss"]
    assert result["reference_val_loss"] < result["flat_val_loss"]
    assert result["recipe"]["lr_schedule"] == "plateau"
    assert result["recipe"]["monitor"] == "val_loss"
    assert result["stopped"] == {"epoch": 3, "reason": "max epochs (3)"}
    assert result["history"][0]["lr"] == config.lr
    assert result["collapsed"] is False
    assert result["collapse"]["seeds"] == [
        {**result["collapse"]["seeds"][0], "seed": config.seed, "collapsed": False}
    ]


def test_a_constructed_collapse_is_flagged_stopped_early_and_reseeded(make_config: Any) -> None:
    # A rate far below float32's resolution of the weights: nothing moves, the output stays
    # the untrained network's, and the validation loss never improves.
    config = make_config(
        epochs=10, lr=1e-12, early_stop_patience=2, reseed_on_collapse=1, logger="none"
    )
    result = train(config)
    assert result["collapsed"] is True
    assert "gap" in result["collapse"]["reason"]
    assert result["collapse"]["evidence"]["gap_closed"] < 0.05
    seeds = result["collapse"]["seeds"]
    assert [entry["seed"] for entry in seeds] == [config.seed, config.seed + 1000]
    assert all(entry["collapsed"] for entry in seeds)
    assert result["seed"] == config.seed + 1000
    # Epoch 1 sets the best loss; two more without a better one end training.
    assert result["stopped"]["epoch"] == 3
    assert result["stopped"]["reason"].startswith("early stopping: val_loss did not improve")
    log = (config.out_dir / "train.log").read_text()
    assert "WARNING collapsed to the flat object" in log
    assert f"training again with seed {config.seed + 1000}" in log
