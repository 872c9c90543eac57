"""train(config) -> result: one training job, from split files to result.json."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from app.core.files import finite_tree
from app.study.contract import ContractError
from worker.training.assess import assess, flat_loss
from worker.training.bundle import BUNDLE_NAME, write_bundle
from worker.training.callbacks import (
    EpochHistory,
    OneBasedCheckpoint,
    ReporterCallback,
    TrainLog,
)
from worker.training.collapse import Collapse, detect_collapse
from worker.training.config import ProgressReporter, TrainConfig
from worker.training.data import PtychoDataModule
from worker.training.divergence import DivergenceCheck
from worker.training.evaluate import comparison_png, figure_title, reference_loss
from worker.training.folder import ConfinementWatch, FolderCheckpointIO, FolderCSVLogger, JobFolder
from worker.training.module import LitPtychoPINN
from worker.training.report import log_assessment
from worker.training.resume import LastCheckpoint, resumable_checkpoint, resume_warnings
from worker.training.watch import ReferenceWatch

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
PNG_NAME = "reconstruction.png"
RESULT_NAME = "result.json"
# Lightning's informational chatter (device summary, "max_epochs reached") stays out of job logs.
_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def train(
    config: TrainConfig, *, reporter: ProgressReporter | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train one job, evaluate it on the test split, write its artifacts; return result.json.

    With `resume`, training continues from `checkpoints/last.ckpt` when an earlier attempt
    left one (its epochs and history are kept); otherwise it starts from scratch.
    """
    started = time.monotonic()
    with JobFolder.for_job(config.out_dir) as folder:  # every artifact is written through it
        return _train_in(folder, config, reporter, resume, started)


def _train_in(
    folder: JobFolder,
    config: TrainConfig,
    reporter: ProgressReporter | None,
    resume: bool,
    started: float,
) -> dict[str, Any]:
    log = TrainLog(config.resolved_log_path, folder=folder)
    log.write(
        f"start gridsize={config.gridsize} nphotons={config.nphotons:g} "
        f"train={config.train_path} test={config.test_path}"
    )
    try:
        data = _load(config, log)
        with _torch_flags_restored(), quiet_lightning():
            result = _train_with_reseeds(folder, config, data, log, reporter, resume)
    except (ContractError, FileNotFoundError):
        raise  # already in train.log, with the file and key
    except Exception as exc:
        log.write(f"ERROR {type(exc).__name__}: {exc}")
        raise
    result["duration_s"] = round(time.monotonic() - started, 3)
    folder.write_json(RESULT_NAME, result)
    log.write(
        f"done status={result['status']} final_loss={result['final_loss']} "
        f"duration_s={result['duration_s']}"
    )
    return result


def _load(config: TrainConfig, log: TrainLog) -> PtychoDataModule:
    data = PtychoDataModule(config)
    try:
        data.setup()
    except (ContractError, FileNotFoundError) as exc:
        log.write(f"ERROR bad data: {exc}")
        raise
    for note in data.notes:
        log.write(note)
    log.write(
        f"data N={data.n} train_samples={data.train_samples.size} "
        f"val_samples={data.val_samples.size} test_samples={data.test_samples.size} "
        f"intensity_scale={data.intensity_scale:.6g}"
    )
    return data


# A reseeded attempt's seed: far from the first, so that no two attempts share a stream.
RESEED_STRIDE = 1000


def _train_with_reseeds(
    folder: JobFolder,
    config: TrainConfig,
    data: PtychoDataModule,
    log: TrainLog,
    reporter: ProgressReporter | None,
    resume: bool,
) -> dict[str, Any]:
    """Train once; while the model collapsed and `reseed_on_collapse` allows, train again
    from a new seed (from scratch). The last attempt's result is kept, every seed's outcome
    recorded under `collapse.seeds`."""
    attempts: list[dict[str, Any]] = []
    attempt_config = config
    while True:
        result = _fit_and_evaluate(folder, attempt_config, data, log, reporter, resume)
        collapse = result["collapse"]
        attempts.append(
            {
                "seed": attempt_config.seed,
                "collapsed": collapse["collapsed"],
                "reason": collapse["reason"],
                "val_loss": result["val_loss"],
                "final_loss": result["final_loss"],
                "epochs_completed": result["epochs_completed"],
                "phase_correlation": result["metrics"].get("phase_correlation"),
            }
        )
        again = len(attempts) <= config.reseed_on_collapse
        if not collapse["collapsed"] or not again or result["status"] == "stopped":
            break
        seed = config.seed + RESEED_STRIDE * len(attempts)
        log.write(
            f"collapsed with seed {attempt_config.seed} ({collapse['reason']}); "
            f"training again with seed {seed} "
            f"({len(attempts)} of {config.reseed_on_collapse} reseeds)"
        )
        attempt_config = dataclasses.replace(config, seed=seed)
        resume = False
    result["collapse"]["seeds"] = attempts
    return result


def _fit_and_evaluate(
    folder: JobFolder,
    config: TrainConfig,
    data: PtychoDataModule,
    log: TrainLog,
    reporter: ProgressReporter | None,
    resume: bool,
) -> dict[str, Any]:
    resume_from = resumable_checkpoint(config.out_dir / CHECKPOINT_DIR) if resume else None
    if resume_from is None:
        _clear_previous_attempt(config.out_dir)
    else:
        log.write(f"resuming from {resume_from.relative_to(config.out_dir)}")
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_model(config, data)
    # Before training the model's physics is the true one: the ground truth's loss there,
    # and the flat object's (what a network that learned nothing scores).
    which = "val" if data.val_samples.size else "train"
    reference = reference_loss(model, data, "val")
    flat = flat_loss(model, data, "val")
    log.write(f"reference val_loss={reference:.6g} (ground truth), {flat:.6g} (flat object)")
    watch = ReferenceWatch(log, reference, estimated_probe=data.probe_factor != 1.0)
    history = EpochHistory(log, config.epochs)
    progress = ReporterCallback(reporter, config.epochs) if reporter is not None else None
    callbacks: list[Callback] = [ConfinementWatch(folder), history, watch, DivergenceCheck()]
    early = early_stopping(config, monitored(data))
    if early is not None:
        callbacks.append(early)
    if progress is not None:
        callbacks.append(progress)
    with expected_warnings(), resume_warnings():
        trainer = build_trainer(config, data, callbacks, folder=folder)
        trainer.fit(model, datamodule=data, ckpt_path=resume_from)
    checkpoint = _final_checkpoint(trainer, config.out_dir)
    if config.keep_weights == "best":
        model = _best_weights(model, trainer, folder)
    model = model.to(trainer.strategy.root_device)
    assessment = assess(model, data, config.stitching, config.stitch_crop)
    title = figure_title(config, assessment.metrics["ours"])
    folder.write_bytes(PNG_NAME, comparison_png(assessment.reconstruction, title=title))
    sha256, size = write_bundle(model, config.to_dict(), config.out_dir / BUNDLE_NAME, folder)
    log_assessment(log, assessment)
    last = history.history[-1] if history.history else {}
    stopped = progress is not None and progress.stop_requested
    final = last.get(f"{which}_loss")
    collapse = detect_collapse(
        final_loss=None if final is None else float(final),
        flat_loss=flat if which == "val" else None,
        truth_loss=reference if which == "val" else None,
        patches=assessment.patches,
        probe=data.test_probe,
        loss_name=f"{which}_loss",
    )
    _log_collapse(log, collapse)
    return {
        "status": "stopped" if stopped else "succeeded",
        "final_loss": _finite(last.get("train_loss")),
        "val_loss": _finite(last.get("val_loss")),
        "reference_val_loss": _finite(reference),
        "flat_val_loss": _finite(flat),
        "val_below_reference_epoch": watch.crossed_at_epoch,
        "seed": config.seed,
        "recipe": recipe(config, monitored(data)),
        "stopped": stop_record(trainer, history, early, stopped, config.epochs),
        "collapsed": collapse.collapsed,
        "collapse": collapse.to_dict(),
        "weights": config.keep_weights,
        "epochs_completed": history.epochs_completed,
        "checkpoint_path": checkpoint,
        "bundle_path": BUNDLE_NAME,
        "bundle_sha256": sha256,
        "bundle_size_bytes": size,
        "device": str(trainer.strategy.root_device),
        **finite_tree(assessment.to_result()),
        "history": history.history,
        "reconstruction_png": PNG_NAME,
    }


def monitored(data: PtychoDataModule) -> str:
    """The loss the schedule and early stopping watch: validation, or training without one."""
    return "val_loss" if data.val_samples.size else "train_loss"


def early_stopping(config: TrainConfig, monitor: str) -> EarlyStopping | None:
    """PtychoPINN's EarlyStopping on the monitored loss; None when its patience is 0."""
    if config.early_stop_patience == 0:
        return None
    return EarlyStopping(monitor=monitor, mode="min", patience=config.early_stop_patience)


def recipe(config: TrainConfig, monitor: str) -> dict[str, Any]:
    """The optimiser, schedule and stopping rule this job trained under, for result.json."""
    return {
        "optimizer": "adam",
        "lr": config.lr,
        "lr_schedule": config.lr_schedule,
        "lr_factor": config.lr_factor,
        "lr_patience": config.lr_patience,
        "min_lr": config.min_lr,
        "early_stop_patience": config.early_stop_patience,
        "monitor": monitor,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "border_phase": config.border_phase,
    }


def stop_record(
    trainer: L.Trainer,
    history: EpochHistory,
    early: EarlyStopping | None,
    stop_requested: bool,
    epochs: int,
) -> dict[str, Any]:
    """The last epoch trained and why training ended there."""
    epoch = int(history.history[-1]["epoch"]) if history.history else 0
    if stop_requested:
        reason = "stop requested"
    elif early is not None and early.stopped_epoch > 0:
        reason = (
            f"early stopping: {early.monitor} did not improve for {early.patience} epochs "
            f"(best {float(early.best_score):.6g})"
        )
    elif epoch >= epochs:
        reason = f"max epochs ({epochs})"
    else:
        reason = "ended early"
    return {"epoch": epoch, "reason": reason}


def _log_collapse(log: TrainLog, collapse: Collapse) -> None:
    if collapse.collapsed:
        log.write(f"WARNING collapsed to the flat object: {collapse.reason}")


def build_model(config: TrainConfig, data: PtychoDataModule) -> LitPtychoPINN:
    """The Lightning module for this job's data."""
    return LitPtychoPINN(
        n=data.n,
        gridsize=config.gridsize,
        intensity_scale=data.intensity_scale,
        input_scale=data.input_scale,
        lr=config.lr,
        loss=config.loss,
        scheduler=config.lr_schedule,
        epochs=config.epochs,
        lr_factor=config.lr_factor,
        lr_patience=config.lr_patience,
        min_lr=config.min_lr,
        monitor=monitored(data),
        border_phase=config.border_phase,
        architecture=config.architecture,
        inputs=config.inputs,
        probe_trainable=config.probe_trainable,
        gain_trainable=config.gain_trainable,
        probe=torch.from_numpy(data.probe),
        detector_mask=None if data.detector_mask is None else torch.from_numpy(data.detector_mask),
    )


def build_trainer(
    config: TrainConfig,
    data: PtychoDataModule,
    callbacks: list[Callback],
    *,
    folder: JobFolder,
) -> L.Trainer:
    """A Trainer honouring the job's execution options; quiet unless on a terminal.

    Its checkpoints and metric logs are written through the job's `folder`.
    """
    checkpoint = OneBasedCheckpoint(
        dirpath=config.out_dir / CHECKPOINT_DIR,
        filename="best-{epoch}",
        monitor="val_loss" if data.val_samples.size else None,
        mode="min",
        # Weights alone cut checkpoint I/O threefold; resuming uses LastCheckpoint's full state.
        save_weights_only=True,
    )
    steps = math.ceil(len(data.train_samples.diffraction) / config.batch_size)
    return L.Trainer(
        accelerator="gpu" if config.accelerator == "cuda" else config.accelerator,
        devices=config.devices,
        max_epochs=config.epochs,
        deterministic=config.deterministic,
        logger=make_logger(config, folder),
        plugins=[FolderCheckpointIO(folder)],
        callbacks=[checkpoint, *callbacks, LastCheckpoint(config.out_dir / CHECKPOINT_DIR)],
        default_root_dir=config.out_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if data.val_samples.size else 0,
        # Only epoch-level metrics are logged; this just keeps Lightning from warning that
        # an epoch is shorter than the interval.
        log_every_n_steps=max(1, min(50, steps)),
    )


def make_logger(config: TrainConfig, folder: JobFolder) -> Logger | bool:
    """csv → metrics.csv (through the job folder), tensorboard → event files, none → none.

    TensorBoard's writer opens its event files by path: the job folder's check at every
    epoch is all that guards it.
    """
    if config.logger == "csv":
        return FolderCSVLogger(folder, save_dir=config.out_dir, name=LOG_DIR, version="csv")
    if config.logger == "tensorboard":
        return TensorBoardLogger(
            save_dir=config.out_dir, name=LOG_DIR, version="tensorboard", default_hp_metric=False
        )
    return False


def _final_checkpoint(trainer: L.Trainer, out_dir: Path) -> str:
    """Relative path of the best checkpoint; a stop before any validation saves one now."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback is not None else ""
    if not best:  # not last.ckpt: a resumed job must not continue from the middle of an epoch
        path = out_dir / CHECKPOINT_DIR / "stopped.ckpt"
        trainer.save_checkpoint(path)
        best = str(path)
    return str(Path(best).relative_to(out_dir))


def _best_weights(model: LitPtychoPINN, trainer: L.Trainer, folder: JobFolder) -> LitPtychoPINN:
    """Evaluate and bundle the weights with the lowest validation loss."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback is not None else ""
    if best:
        saved = io.BytesIO(folder.read_bytes(best))
        state = torch.load(saved, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    return model


def _clear_previous_attempt(out_dir: Path) -> None:
    """A job not resumed starts from clean checkpoint and metric folders (train.log is kept)."""
    for name in (CHECKPOINT_DIR, LOG_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@contextlib.contextmanager
def expected_warnings() -> Iterator[None]:
    """Silence two known, harmless warnings raised inside Trainer.fit.

    Lightning advises more dataloader workers (the job chose its count on purpose), and
    Lightning 2.6 builds a torch pytree `LeafSpec`, which torch 2.13 has deprecated.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*does not have many workers", category=PossibleUserWarning
        )
        # A host with SLURM installed, running a job outside srun: one device, nothing to launch.
        warnings.filterwarnings(
            "ignore", message=r"The `srun` command is available", category=PossibleUserWarning
        )
        warnings.filterwarnings(
            "ignore",
            message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            category=FutureWarning,
        )
        yield


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _torch_flags_restored() -> Iterator[None]:
    """Trainer(deterministic=...) flips process-wide torch flags; put them back afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
