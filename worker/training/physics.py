"""The differentiable forward model of study.md §8, in torch.

Conventions are those of `app.study.simulate`: a scan position (x, y) is the centre of its N×N
patch, and patch pixel (i, j) samples the object at (y - N/2 + i, x - N/2 + j). A diffraction
amplitude is |fftshift(fft2(probe · patch, norm="ortho"))|, times the dataset's intensity scale
when expressed in sqrt(counts).

Offsets are given as (x, y) pairs, in pixels, like `xcoords`/`ycoords`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _shift_last_dim(values: Tensor, shift: Tensor) -> Tensor:
    """Move content along the last axis by `shift` pixels per sample (linear, zeros outside).

    values: (M, ..., L); shift: (M,). out[..., i] = values(i - shift), exact for whole pixels.
    """
    length = values.shape[-1]
    whole = torch.floor(shift)
    frac = (shift - whole).to(values.real.dtype)
    base = torch.arange(length, device=values.device)[None, :] - whole.long()[:, None]
    view = (values.shape[0],) + (1,) * (values.dim() - 2) + (length,)
    out = torch.zeros_like(values)
    for index, weight in ((base, 1.0 - frac), (base - 1, frac)):
        valid = ((index >= 0) & (index < length)).to(frac.dtype)
        gathered = values.gather(-1, index.clamp(0, length - 1).view(view).expand_as(values))
        out = out + gathered * (valid * weight[:, None]).view(view)
    return out


def shift_patches(patches: Tensor, shift_xy: Tensor) -> Tensor:
    """Translate each (…, N, N) patch by (dx, dy) pixels: out[i, j] = patch(i - dy, j - dx).

    patches: (M, N, N) real or complex; shift_xy: (M, 2). Separable linear interpolation, with
    zeros where the shifted patch does not reach; whole-pixel shifts are exact.
    """
    moved = _shift_last_dim(patches, shift_xy[:, 0])
    moved = _shift_last_dim(moved.transpose(-1, -2), shift_xy[:, 1])
    return moved.transpose(-1, -2)


# Σ weight below which a pixel counts as lit by no one and keeps its own value (weights are
# |probe|² / max|probe|², so this is 0.1 % of the brightest pixel's).
WEIGHT_FLOOR = 1e-3


def overlap_constraint(
    patches: Tensor, offsets: Tensor, weight: Tensor | None = None, floor: float = WEIGHT_FLOOR
) -> Tensor:
    """Merge each group's patches where they overlap and return them, cut back out.

    patches: (B, C, N, N) complex; offsets: (B, C, 2) positions (x, y) of the members relative
    to the group centre; weight: real, >= 0, (N, N) or broadcastable to the patches, how well
    each pixel of a member's own grid is constrained. At each pixel the members covering it
    merge as out = Σ w_l · p_l / Σ w_l. With weight None every member counts alike (w = 1,
    the plain average). `forward_amplitude` passes the probe intensity (`probe_weight`): the
    loss sees a member's pixel only through |probe|², so where a neighbour's probe is dark its
    value is unconstrained and must not dilute a member's well-lit centre; a member's own dark
    border takes its value from the neighbours that light it instead. Where Σ w_l < `floor`
    (no one lights the pixel) the correction fades out and the member keeps its own value.

    The merged canvas is evaluated on every member's own pixel grid: a member keeps its own
    samples and only its neighbours are interpolated onto its grid, so a member that overlaps
    nothing comes back unchanged even at sub-pixel offsets, and for whole-pixel offsets this
    is exactly "paste p·w and w on one canvas, divide, cut out" wherever Σ w >= floor.
    """
    batch, count, n, _ = patches.shape
    if count == 1:
        return patches
    k_idx, l_idx = (
        torch.cartesian_prod(torch.arange(count), torch.arange(count)).to(patches.device).T
    )
    others = k_idx != l_idx
    k_idx, l_idx = k_idx[others], l_idx[others]
    real = patches.real.dtype
    if weight is None:
        weight = torch.ones((), dtype=real, device=patches.device)
    own = weight.to(device=patches.device, dtype=real).expand(batch, count, n, n)
    # Member l, seen from member k's grid, sits at offset_l - offset_k.
    shift = (offsets[:, l_idx] - offsets[:, k_idx]).reshape(-1, 2)
    neighbours = (patches * own)[:, l_idx].reshape(-1, n, n)
    neighbour_weight = own[:, l_idx].reshape(-1, n, n).to(patches.dtype)
    both = torch.stack([neighbours, neighbour_weight], dim=1)
    moved = shift_patches(both, shift).reshape(batch, count, count - 1, 2, n, n)
    pulled = moved[:, :, :, 0].sum(dim=2)
    lent = moved[:, :, :, 1].sum(dim=2).real
    # p + Σ_l w_l (p_l - p) / Σ w: the weighted mean, written so that a member no neighbour
    # reaches gets exactly zero added.
    merged: Tensor = patches + (pulled - patches * lent) / (own + lent).clamp_min(floor)
    return merged


def probe_weight(probe: Tensor) -> Tensor:
    """|probe|² normalised to a maximum of 1 (all zero for a dark probe), held constant.

    Detached: the weight says where the loss constrains a patch; it is not a path for
    gradients into a trainable probe.
    """
    power = probe.detach().abs().square()
    weight: Tensor = power / power.max().clamp_min(torch.finfo(power.dtype).tiny)
    return weight


def diffraction_amplitude(patches: Tensor, probe: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """|fftshift(fft2(probe · patch, ortho))| · scale for (…, N, N) complex patches."""
    field = torch.fft.fft2(patches * probe, norm="ortho")
    amplitude: Tensor = torch.fft.fftshift(field, dim=(-2, -1)).abs()
    return amplitude * scale


def backprojection(diffraction: Tensor, probe: Tensor, floor: float = 0.1) -> Tensor:
    """A real-space estimate of each object patch from its amplitudes alone (no learning).

    One error-reduction step from a flat object: give the measured amplitudes the phase of
    the probe's own far field, propagate back, and divide by the probe where it is bright
    (a Wiener-style division, conj(P) / (|P|² + floor · max|P|²)), so that a weakly varying
    object comes back close to itself there and fades to zero where the probe is dark.
    diffraction: (…, N, N) real, fftshifted, as stored; returns complex (…, N, N).
    """
    spectrum = torch.fft.fftshift(torch.fft.fft2(probe, norm="ortho"), dim=(-2, -1))
    magnitude = spectrum.abs()
    phase = torch.where(magnitude > 0, spectrum / magnitude.clamp_min(1e-30), 1.0)
    exit_wave = torch.fft.ifft2(
        torch.fft.ifftshift(diffraction * phase, dim=(-2, -1)), norm="ortho"
    )
    power = probe.abs().square()
    backprop: Tensor = exit_wave * probe.conj() / (power + floor * power.max())
    return backprop


def forward_amplitude(
    patches: Tensor, probe: Tensor, offsets: Tensor, scale: float | Tensor
) -> Tensor:
    """Predicted sqrt(counts) per pattern: overlap constraint, probe, FFT, amplitude, scale.

    The overlap constraint merges members weighted by the probe intensity on each member's
    grid (`overlap_constraint`, `probe_weight`).
    """
    merged = overlap_constraint(patches, offsets, probe_weight(probe))
    return diffraction_amplitude(merged, probe, scale)


def poisson_nll(
    predicted_amplitude: Tensor, measured_amplitude: Tensor, mask: Tensor | None = None
) -> Tensor:
    """Mean Poisson negative log-likelihood of counts = measured² given intensity = predicted².

    `mask` (N, N), 1 where the detector pixel counts, 0 where it does not: the mean is taken
    over the counted pixels only.
    """
    counts = measured_amplitude.square()
    if mask is None:
        return F.poisson_nll_loss(
            predicted_amplitude.square(), counts, log_input=False, full=False, eps=1e-6
        )
    each = F.poisson_nll_loss(
        predicted_amplitude.square(),
        counts,
        log_input=False,
        full=False,
        eps=1e-6,
        reduction="none",
    )
    return _masked_mean(each, mask)


def amplitude_mae(
    predicted_amplitude: Tensor, measured_amplitude: Tensor, mask: Tensor | None = None
) -> Tensor:
    """Mean absolute error between predicted and measured sqrt(counts) (over `mask`)."""
    each = (predicted_amplitude - measured_amplitude).abs()
    return each.mean() if mask is None else _masked_mean(each, mask)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    patterns = values.numel() // mask.numel()
    return (values * mask).sum() / (mask.sum() * patterns).clamp_min(1.0)


def probe_mask(n: int) -> Tensor:
    """PtychoPINN's probe disc: pixels within N/4 of the centre (probe.get_probe_mask_real)."""
    centred = torch.arange(n, dtype=torch.float64) - n // 2 + 0.5
    return torch.hypot(centred[:, None], centred[None, :]) < n // 4


def probe_norm(probe: Tensor, probe_scale: float = 4.0) -> float:
    """PtychoPINN's probe normalisation divisor: probe_scale · mean |probe · disc|.

    As in ptycho/probe.py set_probe (probe_scale 4, ModelConfig's default); 1 for a zero probe.
    """
    disc = probe_mask(probe.shape[-1]).to(probe.device)
    norm = float(probe_scale * (probe.abs() * disc).mean())
    return norm if norm > 0 else 1.0
