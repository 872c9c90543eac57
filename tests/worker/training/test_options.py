"""The run's training options reach TrainConfig unchanged: same names, same defaults, checked."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.options import TrainingOptions
from worker.training.config import TrainConfig


def test_every_option_is_a_train_config_field_with_the_same_default() -> None:
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    options = TrainingOptions().model_dump()
    assert set(options) <= set(defaults)
    assert {name: defaults[name] for name in options} == options
    assert options["architecture"] == "unet"  # the network that learns within minutes
    assert options["inputs"] == "amplitudes+backprop"


def test_options_build_a_config() -> None:
    options = TrainingOptions(
        architecture="unet", inputs="amplitudes+backprop", probe_trainable=True,
        gain_trainable=True, val_fraction=0.1, keep_weights="best", stitching="ptychopinn",
        stitch_crop=32,
    )  # fmt: skip
    config = TrainConfig(Path("a"), Path("b"), Path("c"), 2, 1e3, **options.model_dump())
    assert (config.architecture, config.stitching, config.stitch_crop) == ("unet", "ptychopinn", 32)


@pytest.mark.parametrize(
    "bad",
    [
        {"architecture": "resnet"},
        {"inputs": "backprop"},
        {"val_fraction": 0.6},
        {"val_fraction": -0.1},
        {"keep_weights": "median"},
        {"stitching": "tiles"},
        {"stitch_crop": 0},
    ],
)
def test_bad_values_are_refused_by_both(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrainingOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(Path("a"), Path("b"), Path("c"), 1, 1e3, **bad)  # type: ignore[arg-type]
