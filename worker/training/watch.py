"""Watching the validation loss against the ground truth's own loss on the same samples."""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Callback

from worker.training.callbacks import TrainLog


class ReferenceWatch(Callback):
    """Warns in train.log, once, when the validation loss drops below the reference loss.

    The reference is the loss the ground-truth object scores through the true physics on the
    validation samples: with Poisson counts no reconstruction should beat it, so a
    validation loss below it means the network has begun to fit the noise of those patterns.
    `estimated_probe`: the probe's units were estimated (Parseval with a fully transmitting
    object), so the reference is only approximate and the warning says so.
    """

    def __init__(self, log: TrainLog, reference: float, *, estimated_probe: bool = False) -> None:
        self.train_log = log
        self.reference = reference
        self.estimated_probe = estimated_probe
        self.crossed_at_epoch: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if value is None or self.crossed_at_epoch is not None or not math.isfinite(self.reference):
            return
        loss = float(value)
        if loss < self.reference:
            self.crossed_at_epoch = trainer.current_epoch + 1
            meaning = (
                "the probe's units were estimated, so the ground truth scores only under an "
                "estimated gain: the network may be fitting that gain better, or the noise"
                if self.estimated_probe
                else "the network is fitting the noise of the patterns"
            )
            self.train_log.write(
                f"WARNING epoch {self.crossed_at_epoch}: validation loss {loss:.6g} is below "
                f"the ground truth's reference loss {self.reference:.6g}; {meaning}"
            )
