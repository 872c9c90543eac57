"""LitPtychoPINN: the network trained through the physics, with no ground truth in the loss."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from worker.training.network import PtychoNet
from worker.training.physics import amplitude_mae, backprojection, forward_amplitude, poisson_nll

SCHEDULERS = ("none", "cosine")


class LitPtychoPINN(L.LightningModule):
    """Diffraction amplitudes → complex patches → physics → Poisson NLL (or MAE) of counts.

    The encoder sees, per pattern, the scaled amplitudes and the real and imaginary parts of
    `physics.backprojection` (a parameter-free real-space estimate), plus the probe's
    footprint once per sample: 3·C + 1 maps. Left to discover the inverse Fourier transform
    from amplitudes alone, the network needs far more steps than a CPU job can give it; with
    the estimate it learns the object within a few epochs. Still nothing but the measured
    diffraction enters the loss.
    """

    probe: Tensor

    def __init__(
        self,
        n: int,
        gridsize: int,
        intensity_scale: float,
        input_scale: float = 1.0,
        lr: float = 1e-3,
        loss: str = "poisson",
        scheduler: str = "none",
        epochs: int = 1,
        probe: Tensor | None = None,
    ) -> None:
        super().__init__()
        if loss not in ("poisson", "mae"):
            raise ValueError(f"loss: expected 'poisson' or 'mae', got {loss!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {scheduler!r}")
        # The probe is a buffer: it travels in the state dict, not in the hyperparameters.
        self.save_hyperparameters(ignore=["probe"])
        self.net = PtychoNet(n, gridsize**2, in_channels=3 * gridsize**2 + 1)
        initial = torch.zeros(n, n, dtype=torch.complex64) if probe is None else probe
        self.register_buffer("probe", initial.to(torch.complex64))

    def forward(self, diffraction: Tensor) -> Tensor:
        """(B, C, N, N) diffraction amplitudes as stored → (B, C, N, N) complex patches."""
        estimate = backprojection(diffraction, self.probe)
        # The probe's footprint tells the (translation-invariant) convolutions where the
        # estimate can be trusted.
        footprint = (self.probe.abs() / self.probe.abs().max()).expand(len(diffraction), 1, -1, -1)
        features = torch.cat(
            [diffraction * self.hparams["input_scale"], estimate.real, estimate.imag, footprint],
            dim=1,
        )
        return self.net(features)

    def predicted_amplitude(self, patches: Tensor, offsets: Tensor) -> Tensor:
        """sqrt(counts) the physics predicts for the patches of each group."""
        return forward_amplitude(patches, self.probe, offsets, self.hparams["intensity_scale"])

    def loss(self, predicted: Tensor, diffraction: Tensor) -> Tensor:
        """The training loss of predicted sqrt(counts) against the stored amplitudes."""
        measured = diffraction * self.hparams["intensity_scale"]
        if self.hparams["loss"] == "poisson":
            return poisson_nll(predicted, measured)
        return amplitude_mae(predicted, measured)

    def _common_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        diffraction, offsets = batch
        loss = self.loss(self.predicted_amplitude(self(diffraction), offsets), diffraction)
        # Epoch-level only: per-step logging would add a host sync and disk writes every step.
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(diffraction))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._common_step(batch, "val")

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
        if self.hparams["scheduler"] == "none":
            return optimizer
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(int(self.hparams["epochs"]), 1)
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}
