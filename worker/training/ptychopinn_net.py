"""PtychoPINN's own network, after hoidn/PtychoPINN `ptycho/model.py` (create_autoencoder).

With PtychoPINN's defaults (n_filters_scale f = 2, object.big, probe.big, pad_object):

- encoder: per stage two 3×3 convolutions (ReLU) and a 2×2 max-pool, widths f·(32, 64, 128)
  at N = 64 and one more stage in front per doubling of N (f·(16, 32, 64, 128) at N = 128),
  down to 8×8;
- two decoders, no skip connections: stages of two 3×3 convolutions (ReLU) and a ×2 nearest
  upsampling, widths f·(64, 32) at N = 64 and f·(128, 64, 32) at N = 128, to N/2 × N/2;
- each decoder's head: all channels but the last four → 3×3 convolution → the bounded
  activation (amplitude: sigmoid, phase: π·tanh) on the central N/2 × N/2, zero-padded by N/4
  to N × N; the last four channels → one more up-stage (width f·2048/N) → 3×3 convolution →
  swish, kept only outside the centre (the "border term"); the two are summed;
- `border_phase="full"` (ours, not PtychoPINN's): the phase head's border term goes through
  π·tanh like its centre, instead of swish, whose floor (about −0.28) bounds the border phase
  from below while part of the probe's energy falls outside the centre;
- C = gridsize² patches out, amplitude · exp(i·phase).

Convolutions start as Keras' do: Glorot-uniform weights, zero biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_FILTERS_SCALE = 2
BORDER_CHANNELS = 4  # PtychoPINN's c_outer
BORDER_PHASES = ("swish", "full")


def _check_size(n: int) -> int:
    if n < 64 or n > 1024 or n & (n - 1):
        raise ValueError(
            f"the ptychopinn architecture needs N a power of two in [64, 1024], got {n}; "
            "the unet architecture takes N >= 16"
        )
    return int(math.log2(n))


def encoder_widths(n: int, scale: int = N_FILTERS_SCALE) -> tuple[int, ...]:
    """Stage widths down to 8×8: scale·(32, 64, 128) at N = 64, scale·(16, …, 128) at 128."""
    stages = _check_size(n) - 3
    return tuple(scale * 128 // 2 ** (stages - 1 - k) for k in range(stages))


def decoder_widths(n: int, scale: int = N_FILTERS_SCALE) -> tuple[int, ...]:
    """Stage widths up to N/2: scale·(64, 32) at N = 64, scale·(128, 64, 32) at N = 128."""
    stages = _check_size(n) - 4
    return tuple(scale * 32 * 2 ** (stages - 1 - k) for k in range(stages))


def border_width(n: int, scale: int = N_FILTERS_SCALE) -> int:
    """Width of the border term's up-stage: scale · 2048 / N."""
    _check_size(n)
    return scale * (2048 // n)


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.xavier_uniform_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ConvPool(nn.Sequential):
    """Conv_Pool_block: conv-ReLU, conv-ReLU, 2×2 max-pool."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            _conv(in_channels, width),
            nn.ReLU(),
            _conv(width, width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )


class ConvUp(nn.Sequential):
    """Conv_Up_block: conv-ReLU, conv-ReLU, ×2 nearest upsampling."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(
            _conv(in_channels, width),
            nn.ReLU(),
            _conv(width, width),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )


class Decoder(nn.Module):
    """One of the two heads: base stages, then the centre term plus the border term."""

    def __init__(
        self,
        n: int,
        bottleneck: int,
        channels: int,
        centre_activation: str,
        border_activation: str = "swish",
    ) -> None:
        super().__init__()
        self.border_activation = border_activation
        widths = decoder_widths(n)
        stages: list[nn.Module] = []
        previous = bottleneck
        for width in widths:
            stages.append(ConvUp(previous, width))
            previous = width
        self.base = nn.Sequential(*stages)
        self.centre = _conv(previous - BORDER_CHANNELS, channels)
        self.border_up = ConvUp(BORDER_CHANNELS, border_width(n))
        self.border = _conv(border_width(n), channels)
        self.centre_activation = centre_activation
        self.pad = n // 4
        mask = torch.ones(n, n)
        mask[self.pad : n - self.pad, self.pad : n - self.pad] = 0.0
        self.register_buffer("border_mask", mask, persistent=False)

    border_mask: Tensor

    def forward(self, code: Tensor) -> Tensor:
        x = self.base(code)
        centre = self.centre(x[:, :-BORDER_CHANNELS])
        if self.centre_activation == "sigmoid":
            centre = torch.sigmoid(centre)
        else:
            centre = math.pi * torch.tanh(centre)
        centre = F.pad(centre, (self.pad, self.pad, self.pad, self.pad))
        border = self.border(self.border_up(x[:, -BORDER_CHANNELS:]))
        border = (
            math.pi * torch.tanh(border) if self.border_activation == "tanh" else F.silu(border)
        )
        return centre + border * self.border_mask


class PtychoPINNNet(nn.Module):
    """(B, in_channels, N, N) inputs → (B, C, N, N) complex patches, PtychoPINN's layout."""

    def __init__(
        self, n: int, channels: int, in_channels: int | None = None, border_phase: str = "swish"
    ) -> None:
        super().__init__()
        if border_phase not in BORDER_PHASES:
            raise ValueError(f"border_phase: expected one of {BORDER_PHASES}, got {border_phase!r}")
        widths = encoder_widths(n)
        stages: list[nn.Module] = []
        previous = in_channels or channels
        for width in widths:
            stages.append(ConvPool(previous, width))
            previous = width
        self.encoder = nn.Sequential(*stages)
        self.amplitude = Decoder(n, previous, channels, "sigmoid")
        border = "tanh" if border_phase == "full" else "swish"
        self.phase = Decoder(n, previous, channels, "tanh", border)

    def forward(self, features: Tensor) -> Tensor:
        code = self.encoder(features)
        amplitude = self.amplitude(code)
        phase = self.phase(code)
        # The border term (swish) may go slightly negative, so no torch.polar here.
        return torch.complex(amplitude * torch.cos(phase), amplitude * torch.sin(phase))
