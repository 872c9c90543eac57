"""LitPtychoPINN: the network trained through the physics, with no ground truth in the loss."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from worker.training.network import UNet
from worker.training.physics import (
    amplitude_mae,
    backprojection,
    forward_amplitude,
    poisson_nll,
    probe_norm,
)
from worker.training.ptychopinn_net import PtychoPINNNet

SCHEDULERS = ("plateau", "cosine", "none")
ARCHITECTURES = ("ptychopinn", "unet")
INPUTS = ("amplitudes", "amplitudes+backprop")


def build_network(
    architecture: str, n: int, channels: int, in_channels: int, border_phase: str = "swish"
) -> nn.Module:
    """PtychoPINN's encoder/decoder, or our U-Net (which has no border term)."""
    if architecture == "ptychopinn":
        return PtychoPINNNet(n, channels, in_channels, border_phase=border_phase)
    return UNet(n, channels, in_channels)


class LitPtychoPINN(L.LightningModule):
    """Diffraction amplitudes → complex patches → physics → Poisson NLL (or MAE) of counts.

    `inputs="amplitudes"`: the network sees the measured amplitudes only, as PtychoPINN's
    does. `"amplitudes+backprop"` adds, per pattern, the real and imaginary parts of
    `physics.backprojection` (a parameter-free real-space estimate) and, once per sample, the
    probe's footprint: 3·C + 1 maps. Either way nothing but the measured diffraction enters
    the loss.

    Scales. Predicted sqrt(counts) = |F(probe · patch)| · exp(log_scale + log_gain). With
    `architecture="ptychopinn"` the probe is normalised as PtychoPINN normalises it and
    `log_scale` is trainable (PtychoPINN's IntensityScaler); the network's input is divided by
    the same learned scale, as there. Unlike PtychoPINN, log_scale starts where the normalised
    probe reproduces the data's own intensity scale, so an amplitude of 1 keeps meaning full
    transmission. With `"unet"` the probe is taken as given and the scale is fixed.
    `probe_trainable` refines the probe; `gain_trainable` adds a learned scalar gain on the
    predicted amplitudes (for experimental data whose counts are not calibrated).
    """

    probe: Tensor
    log_scale: Tensor
    initial_log_scale: Tensor
    log_gain: Tensor
    detector_mask: Tensor

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
        lr_factor: float = 0.5,
        lr_patience: int = 2,
        min_lr: float = 1e-4,
        monitor: str = "val_loss",
        border_phase: str = "swish",
        architecture: str = "unet",
        inputs: str = "amplitudes+backprop",
        probe_trainable: bool = False,
        gain_trainable: bool = False,
        probe: Tensor | None = None,
        detector_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        _check_choice("loss", loss, ("poisson", "mae"))
        _check_choice("scheduler", scheduler, SCHEDULERS)
        _check_choice("architecture", architecture, ARCHITECTURES)
        _check_choice("inputs", inputs, INPUTS)
        # Probe and mask are tensors: they travel in the state dict, not in the hyperparameters.
        self.save_hyperparameters(ignore=["probe", "detector_mask"])
        channels = gridsize**2
        in_channels = channels if inputs == "amplitudes" else 3 * channels + 1
        self.net = build_network(architecture, n, channels, in_channels, border_phase)
        initial = torch.zeros(n, n, dtype=torch.complex64) if probe is None else probe
        initial = initial.to(torch.complex64)
        norm = probe_norm(initial) if architecture == "ptychopinn" else 1.0
        self._add_tensor("probe", initial / norm, trainable=probe_trainable)
        log_scale = torch.tensor(math.log(intensity_scale * norm), dtype=torch.float32)
        self._add_tensor("log_scale", log_scale, trainable=architecture == "ptychopinn")
        self.register_buffer("initial_log_scale", log_scale.clone())
        self._add_tensor("log_gain", torch.zeros((), dtype=torch.float32), gain_trainable)
        mask = torch.ones(n, n) if detector_mask is None else detector_mask
        self.register_buffer("detector_mask", mask.to(torch.float32))

    def _add_tensor(self, name: str, value: Tensor, trainable: bool) -> None:
        if trainable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    @property
    def amplitude_factor(self) -> Tensor:
        """From |F(probe · patch)| to predicted sqrt(counts)."""
        return torch.exp(self.log_scale + self.log_gain)

    def effective_probe(self) -> Tensor:
        """The probe in the units of the stored diffraction: stored ≈ |F(probe_eff · patch)|."""
        probe: Tensor = self.probe * (self.amplitude_factor / self.hparams["intensity_scale"])
        return probe

    def features(self, diffraction: Tensor) -> Tensor:
        """The network's input maps for (B, C, N, N) stored diffraction amplitudes."""
        diffraction = diffraction * self.detector_mask
        factor = self.hparams["input_scale"]
        if self.hparams["architecture"] == "ptychopinn":
            factor = factor * torch.exp(self.initial_log_scale - self.log_scale)
        maps = [diffraction * factor]
        if self.hparams["inputs"] == "amplitudes+backprop":
            probe = self.effective_probe()
            estimate = backprojection(diffraction, probe)
            # The probe's footprint tells the (translation-invariant) convolutions where the
            # estimate can be trusted.
            footprint = (probe.abs() / probe.abs().max()).expand(len(diffraction), 1, -1, -1)
            maps += [estimate.real, estimate.imag, footprint]
        return torch.cat(maps, dim=1)

    def forward(self, diffraction: Tensor) -> Tensor:
        """(B, C, N, N) diffraction amplitudes as stored → (B, C, N, N) complex patches."""
        return self.net(self.features(diffraction))  # type: ignore[no-any-return]

    def predicted_amplitude(self, patches: Tensor, offsets: Tensor) -> Tensor:
        """sqrt(counts) the physics predicts for the patches of each group."""
        return forward_amplitude(patches, self.probe, offsets, self.amplitude_factor)

    def loss(self, predicted: Tensor, diffraction: Tensor) -> Tensor:
        """The training loss of predicted sqrt(counts) against the stored amplitudes."""
        measured = diffraction * self.hparams["intensity_scale"]
        mask = None if bool(self.detector_mask.all()) else self.detector_mask
        if self.hparams["loss"] == "poisson":
            return poisson_nll(predicted, measured, mask)
        return amplitude_mae(predicted, measured, mask)

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
        """Adam; "plateau" halves the rate (lr_factor) after lr_patience epochs without a
        better `monitor` loss, down to min_lr (PtychoPINN's ReduceLROnPlateau)."""
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])
        if hp["scheduler"] == "none":
            return optimizer
        if hp["scheduler"] == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=hp["lr_factor"],
                # Keras (PtychoPINN) lowers the rate once `patience` epochs went without a
                # better loss; torch waits for one more: its patience is Keras's minus one.
                patience=max(int(hp["lr_patience"]) - 1, 0),
                min_lr=min(hp["min_lr"], hp["lr"]),  # a rate set below the floor stays
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": plateau,
                    "monitor": hp["monitor"],
                    "interval": "epoch",
                },
            }
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(int(hp["epochs"]), 1)
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
