"""What a client may ask for in a run (POST /runs): the body and its bounded options.

The keys of the training and execution options are `TrainConfig` field names (study.md §8).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, field_validator
from pydantic import Field as PydanticField

from app.paths import MAX_PATH_CHARS
from app.study.design import MAX_SEED, StudyDesign
from app.study.jobs import Filters

# Upper bounds of the run options: generous for real studies, and far from what would
# overflow a column, a seed generator, or a worker's memory.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096
MAX_GROUPS = 1_000_000
MAX_LR = 1.0
MAX_DEVICES = 64
MAX_LOADER_WORKERS = 64
MAX_RESEEDS = 10


class TrainingOptions(BaseModel):
    """Per-run training options; the keys are `TrainConfig` field names (study.md §8)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    epochs: int = PydanticField(50, ge=1, le=MAX_EPOCHS)
    batch_size: int = PydanticField(16, ge=1, le=MAX_BATCH_SIZE)
    lr: float = PydanticField(1e-3, gt=0, le=MAX_LR, allow_inf_nan=False)
    n_groups: int = PydanticField(512, ge=1, le=MAX_GROUPS)
    loss: Literal["poisson", "mae"] = "poisson"
    seed: int = PydanticField(123, ge=0, le=MAX_SEED)
    architecture: Literal["ptychopinn", "unet"] = PydanticField(
        "unet",
        description="unet: ours, the default (it learns on the demo study within minutes on "
        "a CPU); ptychopinn: PtychoPINN's own encoder/decoder, the study's network (it needs "
        "tens of epochs there; run it with inputs: amplitudes as the study does)",
    )
    inputs: Literal["amplitudes", "amplitudes+backprop"] = PydanticField(
        "amplitudes+backprop",
        description="What the network sees: the measured amplitudes, or also their "
        "parameter-free back-projection (the default)",
    )
    probe_trainable: StrictBool = PydanticField(
        False, description="Refine the probe while training"
    )
    gain_trainable: StrictBool = PydanticField(
        False, description="Learn a scalar gain on the predicted counts (uncalibrated data)"
    )
    val_fraction: float = PydanticField(
        0.05, ge=0, le=0.5, description="Share of the train split held out for validation"
    )
    keep_weights: Literal["final", "best"] = PydanticField(
        "final",
        description="Weights to evaluate and bundle: the last epoch's, or the best "
        "validation loss's",
    )
    stitching: Literal["ours", "ptychopinn"] = PydanticField(
        "ours",
        description="ours: |probe|²-weighted with phase alignment; ptychopinn: "
        "central-crop averaging",
    )
    stitch_crop: int = PydanticField(
        20, ge=1, le=1024, description="Central crop M of PtychoPINN's stitching, pixels"
    )
    lr_schedule: Literal["plateau", "cosine", "none"] = PydanticField(
        "plateau",
        description="plateau: multiply lr by lr_factor after lr_patience epochs without a "
        "better validation loss (PtychoPINN's ReduceLROnPlateau); cosine; none",
    )
    lr_factor: float = PydanticField(0.5, gt=0, lt=1, allow_inf_nan=False)
    lr_patience: int = PydanticField(2, ge=0, le=MAX_EPOCHS)
    min_lr: float = PydanticField(
        1e-4,
        ge=0,
        le=MAX_LR,
        allow_inf_nan=False,
        description="Floor of the plateau schedule (an lr below it is never raised)",
    )
    early_stop_patience: int = PydanticField(
        3, ge=0, le=MAX_EPOCHS, description="Epochs without a better validation loss; 0: off"
    )
    reseed_on_collapse: int = PydanticField(
        0,
        ge=0,
        le=MAX_RESEEDS,
        description="Train again from a new seed, up to this many times, when the model "
        "collapses to the flat object",
    )
    border_phase: Literal["swish", "full"] = PydanticField(
        "swish",
        description="ptychopinn network: PtychoPINN's swish border phase, or the full "
        "π·tanh range outside the centre",
    )


ENGINES = ("lsqml", "epie", "rpie", "dm")
# Each engine's name as the study's reconstruction_manifest.json writes it.
ALGORITHMS = {"lsqml": "LSQML", "epie": "ePIE", "rpie": "rPIE", "dm": "DM"}
# Patterns per update when the run names none: Phase F's 96 for LSQML; the PIE engines
# diverge at 96 on the demo data (rPIE's loss went from 3.9 to 1.5e8) and do well at 16.
ENGINE_BATCH_SIZE = {"lsqml": 96, "epie": 16, "rpie": 16, "dm": 96}
SPLITS = ("train", "test")
Split = Literal["train", "test"]
Engine = Literal["lsqml", "epie", "rpie", "dm"]


def _both_splits() -> list[Split]:
    return ["train", "test"]


def _lsqml() -> list[Engine]:
    return ["lsqml"]


MAX_RECONSTRUCTION_BATCH = 4096


class ReconstructionOptions(BaseModel):
    """pty-chi reconstructions of the study's data, as its Phase F runs them: one job per
    dose × view × split × engine, beside the training jobs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    engines: list[Engine] = PydanticField(
        default_factory=_lsqml, min_length=1, max_length=len(ENGINES)
    )
    epochs: int = PydanticField(100, ge=1, le=MAX_EPOCHS)
    splits: list[Split] = PydanticField(
        default_factory=_both_splits, min_length=1, max_length=len(SPLITS)
    )
    batch_size: int | None = PydanticField(
        None,
        ge=1,
        le=MAX_RECONSTRUCTION_BATCH,
        description="Patterns per update; unset: 96 for LSQML and DM, 16 for ePIE and rPIE",
    )
    noise_model: Literal["gaussian", "poisson"] = "gaussian"
    probe_trainable: StrictBool = False

    @field_validator("engines", "splits")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("must not repeat")
        return values


# SLURM's names: a partition or account, --mem (16G), --time (04:00:00, 2-00:00:00, 90).
_SLURM_NAME = r"^[A-Za-z0-9_.-]+$"
_SLURM_MEM = r"^[0-9]+[KMGT]?$"
_SLURM_TIME = r"^([0-9]+-)?[0-9]+(:[0-9]{2}){0,2}$"


class ClusterOptions(BaseModel):
    """Per-run resources of each job on a cluster (SLURM, Ray); unset: the deployment's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    gpus: int | None = PydanticField(None, ge=0, le=64, description="GPUs per job")
    cpus: int | None = PydanticField(None, ge=1, le=1024, description="CPU cores per job")
    mem: str | None = PydanticField(
        None, pattern=_SLURM_MEM, max_length=32, description="SLURM --mem"
    )
    time_limit: str | None = PydanticField(
        None, pattern=_SLURM_TIME, max_length=32, description="SLURM --time"
    )
    partition: str | None = PydanticField(None, pattern=_SLURM_NAME, max_length=64)
    account: str | None = PydanticField(None, pattern=_SLURM_NAME, max_length=64)


class ExecutionOptions(BaseModel):
    """Per-run execution options; the keys are `TrainConfig` field names (study.md §8),
    and `cluster`: resources for the SLURM and Ray executors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = PydanticField(1, ge=1, le=MAX_DEVICES)
    deterministic: StrictBool = True
    num_workers: int = PydanticField(0, ge=0, le=MAX_LOADER_WORKERS)
    logger: Literal["csv", "tensorboard", "none"] = "csv"
    cluster: ClusterOptions | None = None


RUN_CREATE_EXAMPLE: dict[str, Any] = {
    "phase_c_root": "demo/phase_c",
    "phase_d_root": "demo/phase_d",
    "filters": {"dose": 1000.0, "view": None, "gridsize": None},
    "strict": False,
    "dry_run": True,
    "training": {"epochs": 5, "batch_size": 16, "n_groups": 64},
    "execution": {"accelerator": "auto", "logger": "csv"},
}


class RunCreate(BaseModel):
    """A study run to enumerate and enqueue; paths are relative to, or inside, the data root."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [RUN_CREATE_EXAMPLE]}
    )

    phase_c_root: str = PydanticField(min_length=1, max_length=MAX_PATH_CHARS)
    phase_d_root: str = PydanticField(min_length=1, max_length=MAX_PATH_CHARS)
    artifact_root: str | None = PydanticField(
        None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Default: <data_root>/runs/<run id>",
    )
    filters: Filters = PydanticField(default_factory=Filters)
    strict: StrictBool = False
    dry_run: StrictBool = False
    design: StudyDesign | None = None
    training: TrainingOptions = PydanticField(default_factory=TrainingOptions)
    execution: ExecutionOptions = PydanticField(default_factory=ExecutionOptions)
    reconstruction: ReconstructionOptions | None = PydanticField(
        None,
        description="pty-chi reconstruction jobs beside the training jobs (absent: none); "
        "{} takes the study's Phase F defaults (LSQML, 100 epochs, both splits)",
    )
