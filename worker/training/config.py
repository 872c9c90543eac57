"""The options of one training job, and the progress seam the worker hooks into."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

LOSSES = ("poisson", "mae")
LOGGERS = ("csv", "tensorboard", "none")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
ARCHITECTURES = ("ptychopinn", "unet")
INPUTS = ("amplitudes", "amplitudes+backprop")
STITCHINGS = ("ours", "ptychopinn")
KEEP_WEIGHTS = ("final", "best")
LR_SCHEDULES = ("plateau", "cosine", "none")
BORDER_PHASES = ("swish", "full")
MAX_VAL_FRACTION = 0.5


class ProgressReporter(Protocol):
    """Receives training progress and may ask training to stop at the next step."""

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        """`epoch` (from 1) of `epochs` is the one in progress; `step` counts every batch."""
        ...

    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training job needs; field names match the run's stored options."""

    train_path: Path
    test_path: Path
    out_dir: Path
    gridsize: int
    nphotons: float
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    # PtychoPINN's recipe: ReduceLROnPlateau on the validation loss (factor 0.5, patience 2,
    # down to 1e-4) and EarlyStopping on it (patience 3; 0 turns it off).
    lr_schedule: str = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 2
    min_lr: float = 1e-4
    early_stop_patience: int = 3
    # A job whose output stays the flat object is trained again from a new seed, N times.
    reseed_on_collapse: int = 0
    n_groups: int = 512
    neighbor_count: int = 7
    loss: str = "poisson"
    # The network: our U-Net (the default: it learns on the demo study within minutes on a
    # CPU, bench/learning.py) or PtychoPINN's own (the study's, `ptychopinn`, which needs tens
    # of epochs there); what it sees: the measured amplitudes alone, or also a parameter-free
    # back-projection of them (the default).
    architecture: str = "unet"
    inputs: str = "amplitudes+backprop"
    probe_trainable: bool = False
    gain_trainable: bool = False
    # The phase decoder's border term (outside the centre N/2): PtychoPINN's swish, floored
    # near -0.28 rad, or "full": π·tanh like the centre.
    border_phase: str = "swish"
    # Held out of the train split for the validation loss (the test split never is).
    val_fraction: float = 0.05
    keep_weights: str = "final"
    stitching: str = "ours"
    stitch_crop: int = 20
    accelerator: str = "auto"
    devices: int = 1
    deterministic: bool = True
    num_workers: int = 0
    logger: str = "csv"
    seed: int = 123
    log_path: Path | None = None
    # Who the job is, for people: e.g. "job 12, dense" (titles the reconstruction figure).
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("train_path", "test_path", "out_dir", "log_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        self._check_choices()
        self._check_ranges()

    def _check_choices(self) -> None:
        checks = {
            "gridsize": (self.gridsize, (1, 2)),
            "loss": (self.loss, LOSSES),
            "logger": (self.logger, LOGGERS),
            "accelerator": (self.accelerator, ACCELERATORS),
            "architecture": (self.architecture, ARCHITECTURES),
            "inputs": (self.inputs, INPUTS),
            "stitching": (self.stitching, STITCHINGS),
            "keep_weights": (self.keep_weights, KEEP_WEIGHTS),
            "lr_schedule": (self.lr_schedule, LR_SCHEDULES),
            "border_phase": (self.border_phase, BORDER_PHASES),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"TrainConfig.{name}: expected one of {allowed}, got {value!r}")

    def _check_ranges(self) -> None:
        positive = {
            "nphotons": self.nphotons,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "n_groups": self.n_groups,
            "devices": self.devices,
            "stitch_crop": self.stitch_crop,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"TrainConfig.{name}: expected a positive value, got {value!r}")
        if not 0.0 <= self.val_fraction <= MAX_VAL_FRACTION:
            raise ValueError(
                f"TrainConfig.val_fraction: expected 0 to {MAX_VAL_FRACTION}, "
                f"got {self.val_fraction!r}"
            )
        if not 0.0 < self.lr_factor < 1.0:
            raise ValueError(
                f"TrainConfig.lr_factor: expected 0 < factor < 1, got {self.lr_factor!r}"
            )
        if not self.min_lr >= 0.0:
            raise ValueError(f"TrainConfig.min_lr: expected >= 0, got {self.min_lr!r}")
        for name in ("num_workers", "lr_patience", "early_stop_patience", "reseed_on_collapse"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}: expected >= 0, got {getattr(self, name)}")
        if self.gridsize == 2 and self.neighbor_count < 4:
            raise ValueError(
                f"TrainConfig.neighbor_count: expected >= 4 for gridsize 2, "
                f"got {self.neighbor_count}"
            )

    @property
    def resolved_log_path(self) -> Path:
        return self.log_path if self.log_path is not None else self.out_dir / "train.log"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy: paths as strings."""
        values = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
