"""Our U-Net: diffraction amplitudes (and optional input maps) in, complex object patches out.

Not PtychoPINN's network (that one is `ptychopinn_net`): skip connections, strided convolutions
and a full-patch sigmoid amplitude. Kept as `architecture="unet"`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def encoder_widths(n: int) -> tuple[int, ...]:
    """Channel widths of the encoder stages: 32, 64, 128 down to N/8 at N = 64, one more each ×2."""
    if n < 16 or n & (n - 1):
        raise ValueError(f"patch size N must be a power of two >= 16, got {n}")
    stages = max(int(math.log2(n)) - 3, 1)
    return tuple(32 * 2**s for s in range(stages))


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Conv stages, each halving the size with a strided conv; keeps each stage for the skips."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.blocks.append(_conv(previous, width))
            # A strided conv rather than pooling: also deterministic on CUDA.
            self.downs.append(
                nn.Sequential(
                    nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)
                )
            )
            previous = width

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for block, down in zip(self.blocks, self.downs, strict=True):
            x = block(x)
            skips.append(x)
            x = down(x)
        return x, skips


class Decoder(nn.Module):
    """Transposed-conv stages back to N×N, each joined by the encoder's stage of that size.

    Each stage is half as wide as the encoder's: the skips carry the detail, and the
    full-size stages dominate the cost on a CPU.
    """

    def __init__(self, widths: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        previous = widths[-1]
        for skip_width in reversed(widths):
            width = skip_width // 2
            self.ups.append(
                nn.Sequential(
                    nn.ConvTranspose2d(previous, width, 2, stride=2), nn.ReLU(inplace=True)
                )
            )
            self.blocks.append(_conv(width + skip_width, width))
            previous = width
        self.head = nn.Conv2d(previous, out_channels, 3, padding=1)

    def forward(self, code: Tensor, skips: list[Tensor]) -> Tensor:
        x = code
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        out: Tensor = self.head(x)
        return out


class UNet(nn.Module):
    """Encoder and two decoders: amplitude in (0, 1) by a sigmoid, phase in (-π, π) by π·tanh.

    `in_channels` input maps per sample; `channels` (C = gridsize²) patches out.
    """

    def __init__(self, n: int, channels: int, in_channels: int | None = None) -> None:
        super().__init__()
        widths = encoder_widths(n)
        self.encoder = Encoder(in_channels or channels, widths)
        self.amplitude = Decoder(widths, channels)
        self.phase = Decoder(widths, channels)

    def forward(self, features: Tensor) -> Tensor:
        """(B, in_channels, N, N) inputs → (B, C, N, N) complex patches."""
        code, skips = self.encoder(features)
        amplitude = torch.sigmoid(self.amplitude(code, skips))
        phase = math.pi * torch.tanh(self.phase(code, skips))
        return torch.polar(amplitude, phase)
