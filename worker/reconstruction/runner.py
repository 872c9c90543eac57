"""reconstruct(config) -> result: one pty-chi job, from a split file to result.json.

The engine runs `chunk_epochs` epochs at a time; after each chunk the progress goes to the
reporter (epoch of total, step, loss) and a stop request ends the job there, keeping what
it reconstructed so far (status "stopped"). The result has a training job's shape: our
metric block under `metrics`, PtychoPINN's beside it, the flat object's as the baseline,
the skill against it, and the artifacts' names relative to the job's folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from app.core.files import finite_tree
from app.study.contract import ContractError, SplitData
from worker.reconstruction.assessment import assess_object
from worker.reconstruction.config import ReconstructConfig
from worker.reconstruction.inputs import EngineInputs, engine_inputs, resolve_nphotons
from worker.reconstruction.outputs import (
    NPZ_NAME,
    PNG_NAME,
    PRODUCT_NAME,
    Outcome,
    npz_bytes,
    product_bytes,
)
from worker.reconstruction.ptychi_engine import PtychiSession
from worker.training.callbacks import TrainLog
from worker.training.config import ProgressReporter
from worker.training.data import dose_notes
from worker.training.evaluate import FIGURE_METRICS, comparison_png
from worker.training.folder import JobFolder
from worker.training.h5_inputs import load_input
from worker.training.report import log_assessment

RESULT_NAME = "result.json"
# A loss this many times its lowest so far is a run that blew up (rPIE with large batches
# does: each batch sums the full-step updates of every overlapping pattern), though finite.
DIVERGENCE_FACTOR = 100.0


class ReconstructionDiverged(RuntimeError):
    """The engine's loss, or its object, stopped being finite."""

    def __init__(self, what: str, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(f"reconstruction diverged at epoch {epoch}: {what}")


def reconstruct(
    config: ReconstructConfig,
    *,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Reconstruct one split with pty-chi, score it, write its artifacts; return result.json."""
    started = time.monotonic()
    with JobFolder.for_job(config.out_dir) as folder:  # every artifact is written through it
        return _reconstruct_in(folder, config, reporter, should_stop, started)


def _reconstruct_in(
    folder: JobFolder,
    config: ReconstructConfig,
    reporter: ProgressReporter | None,
    should_stop: Callable[[], bool] | None,
    started: float,
) -> dict[str, Any]:
    log = TrainLog(config.resolved_log_path, folder=folder)
    log.write(
        f"start reconstruct engine={config.engine} epochs={config.epochs} input={config.input_npz}"
    )
    try:
        split, inputs = _load(config, log)
        engine_started = time.monotonic()
        session = PtychiSession(config, inputs)
        log.write(
            f"engine {config.algorithm} device={session.device_name} threads={session.threads} "
            f"positions={split.n} batches_per_epoch={session.batches_per_epoch} "
            f"intensity_scale={inputs.intensity_scale:.6g}"
        )
        epochs_started = time.monotonic()
        stop_asked = _stop_asked(reporter, should_stop)
        stopped = _run_chunks(session, config, log, stop_asked, reporter, folder.check)
        epochs_s = time.monotonic() - epochs_started
        engine_s = time.monotonic() - engine_started
        result = _finish(folder, config, split, inputs, session, log, stopped=stopped)
    except (ContractError, FileNotFoundError):
        raise  # already in the log, with the file and key
    except Exception as exc:
        log.write(f"ERROR {type(exc).__name__}: {exc}")
        raise
    # The engine's own time: building its task and every epoch (engine_s), and per epoch.
    result["engine_s"] = round(engine_s, 3)
    result["epoch_s"] = round(epochs_s / max(result["epochs_completed"], 1), 4)
    result["duration_s"] = round(time.monotonic() - started, 3)
    folder.write_json(RESULT_NAME, result)
    log.write(
        f"done status={result['status']} final_loss={result['final_loss']} "
        f"duration_s={result['duration_s']}"
    )
    return result


def _load(config: ReconstructConfig, log: TrainLog) -> tuple[SplitData, EngineInputs]:
    try:
        split = load_input(config.input_npz)
        nphotons = resolve_nphotons(split, config.nphotons)
        inputs = engine_inputs(split, config.nphotons)
    except (ContractError, FileNotFoundError) as exc:
        log.write(f"ERROR bad data: {exc}")
        raise
    for note in split.notes:
        log.write(f"{split.path.name}: {note}")
    if nphotons is not None:
        for note in dose_notes(split, nphotons, inputs.intensity_scale):
            log.write(note)
    return split, inputs


def _stop_asked(
    reporter: ProgressReporter | None, should_stop: Callable[[], bool] | None
) -> Callable[[], bool]:
    def asked() -> bool:
        return bool(
            (reporter is not None and reporter.should_stop())
            or (should_stop is not None and should_stop())
        )

    return asked


def _run_chunks(
    session: PtychiSession,
    config: ReconstructConfig,
    log: TrainLog,
    stop_asked: Callable[[], bool],
    reporter: ProgressReporter | None,
    check_folder: Callable[[], None],
) -> bool:
    """Run every epoch, a chunk at a time; True when a stop request ended it early.

    `check_folder` runs before every chunk: a job folder moved or replaced ends the job.
    """
    while session.epochs_done < config.epochs:
        check_folder()
        count = min(config.chunk_epochs, config.epochs - session.epochs_done)
        losses = session.run(count)
        done = session.epochs_done
        for offset, loss in enumerate(losses):
            log.write(f"epoch {done - count + offset + 1}/{config.epochs} loss={loss:.6g}")
        if not all(math.isfinite(loss) for loss in losses):
            raise ReconstructionDiverged("the loss is not finite", done)
        best = min(session.losses())
        if losses[-1] > DIVERGENCE_FACTOR * best:
            raise ReconstructionDiverged(
                f"the loss grew from {best:.6g} to {losses[-1]:.6g}; "
                "a smaller batch_size steadies the PIE engines",
                done,
            )
        if reporter is not None:
            step = done * session.batches_per_epoch
            reporter.on_progress(epoch=done, epochs=config.epochs, step=step, loss=losses[-1])
        if done < config.epochs and stop_asked():
            log.write(f"stop requested: keeping the reconstruction after epoch {done}")
            return True
    return False


def _finish(
    folder: JobFolder,
    config: ReconstructConfig,
    split: SplitData,
    inputs: EngineInputs,
    session: PtychiSession,
    log: TrainLog,
    *,
    stopped: bool,
) -> dict[str, Any]:
    """Score the object, write the artifacts, and assemble result.json."""
    done = session.epochs_done
    image = inputs.object_image(session.object_buffer())
    if not np.all(np.isfinite(image)):
        raise ReconstructionDiverged("the object holds NaN or infinite values", done)
    losses = session.losses()
    outcome = Outcome(
        obj=image,
        probe=inputs.probe_in_split_units(session.probe()),
        xcoords=inputs.xcoords,
        ycoords=inputs.ycoords,
        losses=losses,
    )
    counts = float(np.mean(np.sum(inputs.intensities, axis=(1, 2), dtype=np.float64)))
    folder.write_bytes(NPZ_NAME, npz_bytes(outcome))
    name = config.label or f"{config.algorithm} {split.path.name}"
    folder.write_bytes(PRODUCT_NAME, product_bytes(outcome, name=name, photon_count=counts))
    assessment = assess_object(image, split)
    title = _figure_title(config, done, assessment.metrics["ours"])
    folder.write_bytes(PNG_NAME, comparison_png(assessment.reconstruction, title=title))
    log_assessment(log, assessment)
    return {
        "status": "stopped" if stopped else "succeeded",
        "engine": config.engine,
        "algorithm": config.algorithm,
        "num_epochs": config.epochs,
        "epochs_completed": done,
        "final_loss": losses[-1] if losses else None,
        "stopped": {
            "epoch": done,
            "reason": "stop requested" if stopped else f"max epochs ({config.epochs})",
        },
        "recipe": _recipe(config),
        "seed": config.seed,
        "device": session.device_name,
        "threads": session.threads,
        "input_npz": str(config.input_npz),
        "n_positions": split.n,
        "intensity_scale": inputs.intensity_scale,
        "mean_counts_per_pattern": counts,
        **finite_tree(assessment.to_result()),
        "history": finite_tree(
            [{"epoch": i + 1, "complete": True, "loss": loss} for i, loss in enumerate(losses)]
        ),
        "reconstruction_npz": NPZ_NAME,
        "product_h5": PRODUCT_NAME,
        "reconstruction_png": PNG_NAME,
    }


def _recipe(config: ReconstructConfig) -> dict[str, Any]:
    """The engine's settings this job ran under."""
    recipe: dict[str, Any] = {
        "engine": config.engine,
        "algorithm": config.algorithm,
        "epochs": config.epochs,
        "batch_size": None if config.engine == "dm" else config.batch_size,
        "probe_trainable": config.probe_trainable,
        "positions_trainable": False,
        "initial_object": "ones",
        "chunk_epochs": config.chunk_epochs,
    }
    if config.engine == "lsqml":
        recipe["noise_model"] = config.noise_model
    return recipe


def _figure_title(config: ReconstructConfig, epochs: int, metrics: dict[str, float]) -> str:
    who = f"{config.label}: " if config.label else ""
    first = f"{who}pty-chi {config.algorithm}, {epochs} of {config.epochs} epochs"
    scores = [
        f"{name} {value:.3g}"
        for name, key in FIGURE_METRICS
        if isinstance(value := metrics.get(key), int | float) and math.isfinite(value)
    ]
    return f"{first}\n{', '.join(scores)}" if scores else first
