"""A training whose loss stops being finite fails at once, with that cause in its words."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, loss: float, epoch: int, step: int) -> None:
        self.loss = loss
        self.epoch = epoch
        self.step = step
        shown = "NaN" if math.isnan(loss) else str(loss)
        super().__init__(f"training diverged: loss is {shown} at epoch {epoch} (step {step})")


class DivergenceCheck(Callback):
    """Raises TrainingDiverged after the first batch whose loss is not finite.

    Without it a diverged job trains on to the end, and fails later on something unrelated
    (a NaN that strict JSON cannot write), or "succeeds" with a useless model.
    """

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            value = float(loss.detach())
        elif isinstance(loss, int | float):
            value = float(loss)
        else:
            return
        if not math.isfinite(value):
            raise TrainingDiverged(value, trainer.current_epoch + 1, trainer.global_step)
