"""Side effects of training: progress to a reporter, epoch lines to train.log, checkpoints.

Epochs are numbered from 1 wherever people read them (progress, train.log, checkpoint
names, result.json); Lightning's `current_epoch` counts from 0.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from app.core.files import log_timestamp
from worker.training.config import ProgressReporter

if TYPE_CHECKING:
    from worker.training.folder import JobFolder

logger = logging.getLogger(__name__)


class TrainLog:
    """Appends timestamped lines to a job's train.log (and mirrors them to the logger).

    With the job's `folder` (and the log inside it, as every job's is) each line goes
    through the folder, never through a symlink; a log kept elsewhere (`--log-path`) is
    appended to by its path.
    """

    def __init__(self, path: Path, folder: JobFolder | None = None) -> None:
        self.path = path
        self.folder = folder if folder is not None and folder.holds(path) else None
        if self.folder is None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, message: str) -> None:
        stamp = log_timestamp()
        line = f"{stamp} {message}\n"
        if self.folder is not None:
            self.folder.append_text(self.path, line)
        else:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        logger.info(message)


def epoch_number(trainer: L.Trainer) -> int:
    """The 1-based number of the epoch in progress (or just finished, in epoch-end hooks)."""
    return trainer.current_epoch + 1


class OneBasedCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose `{epoch}` in file names is 1-based, like train.log and progress."""

    def format_checkpoint_name(
        self,
        metrics: dict[str, torch.Tensor],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver=ver, prefix=prefix)


class ReporterCallback(Callback):
    """Forwards (epoch of epochs, step, loss) to a reporter and stops training when it asks.

    `should_stop` is polled after every step; progress is sent at most every `interval_s`
    (and after each epoch) because reading the loss forces a device sync.
    """

    def __init__(self, reporter: ProgressReporter, epochs: int, interval_s: float = 0.5) -> None:
        self.reporter = reporter
        self.epochs = epochs
        self.interval_s = interval_s
        self.stop_requested = False
        self._last_report = -math.inf

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.reporter.should_stop():
            self.stop_requested = True
            trainer.should_stop = True
        now = time.monotonic()
        if now - self._last_report >= self.interval_s or self.stop_requested:
            self._last_report = now
            self._report(trainer, _loss_of(outputs))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("train_loss")
        if loss is not None:
            self._report(trainer, float(loss))

    def _report(self, trainer: L.Trainer, loss: float) -> None:
        self.reporter.on_progress(
            epoch=epoch_number(trainer), epochs=self.epochs, step=trainer.global_step, loss=loss
        )


class EpochHistory(Callback):
    """Keeps each epoch's losses and writes them to train.log."""

    def __init__(self, log: TrainLog, epochs: int) -> None:
        self.train_log = log
        self.epochs = epochs
        self.history: list[dict[str, float | int | bool]] = []
        self._lr: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The rate this epoch trains at (a plateau schedule may lower it once it ends).
        optimizers = trainer.optimizers
        self._lr = float(optimizers[0].param_groups[0]["lr"]) if optimizers else None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss")}
        # A stop request ends the epoch early; it is recorded, but not counted as completed.
        complete = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        row: dict[str, float | int | bool] = {
            "epoch": epoch_number(trainer),
            "complete": complete,
            **metrics,
        }
        if self._lr is not None:
            row["lr"] = self._lr
        self.history.append(row)
        shown = " ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items()))
        if self._lr is not None:
            shown += f" lr={self._lr:.3g}"
        partial = "" if complete else " (stopped early)"
        self.train_log.write(f"epoch {epoch_number(trainer)}/{self.epochs} {shown}{partial}")

    @property
    def epochs_completed(self) -> int:
        return sum(1 for row in self.history if row["complete"])

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])  # a resumed job keeps its earlier epochs


def _loss_of(outputs: Any) -> float:
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    if isinstance(outputs, torch.Tensor):
        outputs = outputs.detach()
    return float(outputs) if outputs is not None else math.nan
