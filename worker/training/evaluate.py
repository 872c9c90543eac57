"""Predict the test split, stitch the patches into an object image, score it, draw it.

Two stitchings: ours (each patch weighted by |probe|², the patches' constant phase offsets
synchronised first) and PtychoPINN's (`reassemble_position`: only each patch's central M×M pixels,
uniform weights, no alignment; M = 20 as in its compare_models).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackNoConvergence, eigsh
from scipy.spatial import cKDTree

from worker.training.config import TrainConfig
from worker.training.data import EVAL_BATCH_SIZE, PtychoDataModule, ground_truth_patches
from worker.training.metrics import align_phase
from worker.training.module import LitPtychoPINN
from worker.training.physics import shift_patches

# Pixels whose summed stitching weight is below this share of the probe's peak weight were
# barely illuminated: they are left out of the pixel metrics.
COVERAGE_FRACTION = 0.1
# `stitch(align_iterations=...)` for our stitching: any value above 0 synchronises the
# patches' phase offsets and each one above 1 adds a patch-by-patch refinement sweep. After
# the synchronisation a sweep moved the phase correlation by under 0.0005 (bench: 800 to
# 3000 noisy patches), so none is run.
ALIGN_ITERATIONS = 1
# Each patch is paired with the patch nearest to each of these points: the 8 neighbours of
# its corner at each distance (a share of the patch size) along the rows, columns and
# diagonals. The near ring carries most of the overlap; the far ring keeps scans whose
# patches only just overlap in one piece. Pairing every overlapping patch would cost the
# square of the scan's density and change the result by less than the noise (bench: a
# correlation within 0.001 of the full overlap matrix's).
PARTNER_RINGS = (1 / 3, 3 / 4)
# Components up to this size get a dense eigensolver; above it, Lanczos on the sparse matrix.
DENSE_EIGEN_LIMIT = 256
# Elements of the patch overlaps gathered at once when filling the overlap matrix.
GATHER_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Reconstruction:
    """A stitched reconstruction and the ground truth, cropped to the scanned region."""

    rec: np.ndarray  # complex (h, w)
    gt: np.ndarray  # complex (h, w)
    mask: np.ndarray  # bool (h, w): pixels the scan illuminated


@torch.no_grad()
def predict_patches(
    model: LitPtychoPINN, diffraction: np.ndarray, *, batch_size: int = 64
) -> np.ndarray:
    """Run the network over (S, C, N, N) amplitudes → complex64 (S, C, N, N) patches."""
    was_training = model.training
    model.eval()
    device = model.probe.device
    outputs = []
    for start in range(0, len(diffraction), batch_size):
        batch = torch.from_numpy(diffraction[start : start + batch_size]).to(device)
        outputs.append(model(batch).cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


@torch.no_grad()
def reference_loss(
    model: LitPtychoPINN,
    data: PtychoDataModule,
    which: str = "test",
    patches: np.ndarray | None = None,
) -> float:
    """Loss of the ground-truth patches on `which` samples ("test" or "val"): the loss a
    perfect reconstruction would score under the model's current physics. `patches`, one
    (N, N) complex patch per position of the split, stands in for the truth (e.g. a flat
    object's)."""
    samples = data.test_samples if which == "test" else data.val_samples
    split = data.test_split if which == "test" else data.train_split
    if samples.size == 0:
        return float("nan")
    truth = ground_truth_patches(split) if patches is None else patches
    device = model.probe.device
    weighted = 0.0
    for start in range(0, samples.size, EVAL_BATCH_SIZE):
        block = slice(start, start + EVAL_BATCH_SIZE)
        chosen = torch.from_numpy(truth[samples.indices[block]]).to(device)
        offsets = torch.from_numpy(samples.offsets[block]).to(device)
        diffraction = torch.from_numpy(samples.diffraction[block]).to(device)
        loss = model.loss(model.predicted_amplitude(chosen, offsets), diffraction)
        weighted += float(loss) * len(chosen)
    return weighted / samples.size


def stitch(
    patches: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    weight: np.ndarray,
    *,
    align_iterations: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of (P, N, N) patches centred at (P, 2) positions (x, y) on an image.

    Same geometry as the simulator: patch pixel (i, j) lies at (y - N/2 + i, x - N/2 + j);
    sub-pixel parts use the physics' linear shift. A constant phase factor on one pattern's
    patch leaves its diffraction unchanged, so a network may return each patch with its own
    phase offset. With `align_iterations` > 0 the offsets are first synchronised over the
    whole scan (`synchronise_phases`; no ground truth involved), and every iteration above
    one adds a sweep that turns each patch to the mosaic of the others. Returns (image,
    summed weight).
    """
    n = patches.shape[-1]
    corner = positions[:, ::-1] - n / 2  # (row, col) of each patch's pixel (0, 0)
    whole = np.floor(corner).astype(int)
    frac = torch.from_numpy((corner - whole)[:, ::-1].copy())  # back to (x, y) shifts
    padded = np.zeros((len(patches), 2, n + 1, n + 1), dtype=np.complex128)
    padded[:, 0, :n, :n] = patches * weight
    padded[:, 1, :n, :n] = weight
    moved = shift_patches(torch.from_numpy(padded), frac).numpy()
    values, weights = moved[:, 0], moved[:, 1].real
    windows = [_window(row, col, n + 1, shape) for row, col in whole]
    if align_iterations > 0:
        values = _align_offsets(values, whole, windows, shape, align_iterations - 1)
    total = _accumulate(weights, windows, shape).real
    image = _accumulate(values, windows, shape) / np.where(total > 0, total, 1.0)
    return image, total


Window = tuple[tuple[slice, slice], tuple[slice, slice]]


def _window(row: int, col: int, size: int, shape: tuple[int, int]) -> Window:
    """(image slices, patch slices) of a size×size patch with its corner at (row, col)."""
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + size, shape[0]), min(col + size, shape[1])
    return (slice(r0, r1), slice(c0, c1)), (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))


def _align_offsets(
    values: np.ndarray,
    corners: np.ndarray,
    windows: list[Window],
    shape: tuple[int, int],
    sweeps: int,
) -> np.ndarray:
    """Synchronise the weighted patches' phases, then refine them in `sweeps` sweeps."""
    size = values.shape[-1]
    steps = np.arange(size)
    rows_in = (corners[:, :1] + steps >= 0) & (corners[:, :1] + steps < shape[0])
    cols_in = (corners[:, 1:] + steps >= 0) & (corners[:, 1:] + steps < shape[1])
    # Off-image pixels never reach the mosaic, so they must not vote on the phases either.
    inside = rows_in[:, :, None] & cols_in[:, None, :]
    values = values * inside if not inside.all() else values.copy()
    values *= synchronise_phases(values, corners)[:, None, None]
    if sweeps:
        _refine_offsets(values, windows, shape, sweeps)
    return values


def synchronise_phases(values: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Unit factors (P,) that bring (P, S, S) patches with corners (P, 2) into one phase.

    `values` are weighted patches on the image grid: patch pixel (i, j) lies at image pixel
    corners[k] + (i, j), both integer (row, col). The overlap matrix H[k, l] = Σ conj(v_k)·v_l
    over the pixels patches k and l share is Hermitian, and f^H H f with |f_k| = 1 is the
    energy of the mosaic of the rotated patches f_k·v_k: largest when their overlaps agree.
    Its leading eigenvector solves the relaxed problem for all patches at once, where a
    patch-by-patch pass settles in the local optimum nearest its start (random offsets of
    ±π left the mosaic at a phase correlation near 0.1). Degree normalisation keeps the
    eigenvector from concentrating on the densest part of the scan, which would leave the
    phases elsewhere to rounding. Patches that overlap no others keep their phase; each
    group of overlapping patches (a connected component) is solved alone and keeps its mean
    phase.
    """
    count = len(values)
    factors = np.ones(count, dtype=np.complex128)
    lit = np.any(values != 0, axis=0)
    support = np.flatnonzero(lit.any(axis=0) | lit.any(axis=1))
    if count < 2 or support.size == 0:
        return factors
    # One square box round every nonzero pixel: a central-crop weight shrinks the reach.
    lo, hi = int(support[0]), int(support[-1]) + 1
    cropped = values[:, lo:hi, lo:hi]
    matrix, energy = _overlap_matrix(cropped, corners.astype(np.intp))
    magnitude = abs(matrix)
    degree = np.asarray(magnitude.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    normalised = scipy.sparse.csr_array(
        scipy.sparse.diags_array(scale) @ matrix @ scipy.sparse.diags_array(scale)
    )
    _, labels = connected_components(magnitude, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        block = normalised[members][:, members]
        vector = _leading_eigenvector(block, np.sqrt(degree[members]))
        size = np.abs(vector)
        turn = np.where(size > 0, vector / np.where(size > 0, size, 1.0), 1.0)
        # The eigenvector's own phase is arbitrary: undo the group's energy-weighted mean
        # turn, so patches that needed no rotation come back as they were.
        mean = np.vdot(turn, energy[members])
        factors[members] = turn * (mean / abs(mean) if abs(mean) > 0 else 1.0)
    return factors


def _partners(corners: np.ndarray, size: int) -> np.ndarray:
    """(pairs, 2) indices k < l of overlapping patches, a few partners per patch."""
    count = len(corners)
    tree = cKDTree(corners)
    compass = np.array([(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1) if r or c], float)
    offsets = np.concatenate([ring * size * compass for ring in PARTNER_RINGS])
    targets = (corners[:, None, :] + offsets[None]).reshape(-1, 2)
    _, found = tree.query(targets)
    # The nearest other patch: a repeat of the same position has nobody else at distance 0.
    _, nearest = tree.query(corners, k=2)
    own = np.arange(count)
    other = np.where(nearest[:, 0] == own, nearest[:, 1], nearest[:, 0])
    first = np.concatenate([np.repeat(own, len(offsets)), own])
    second = np.concatenate([np.asarray(found).ravel(), other])
    reach = np.abs(corners[first] - corners[second]).max(axis=1)
    keep = (first != second) & (reach < size)
    pairs = np.sort(np.stack([first[keep], second[keep]], axis=1), axis=1)
    return np.unique(pairs, axis=0)


def _overlap_matrix(
    values: np.ndarray, corners: np.ndarray
) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """Sparse Hermitian H over the partner pairs, and each patch's energy H[k, k]."""
    count, size = len(values), values.shape[-1]
    pairs = _partners(corners, size)
    energy = np.einsum("pij,pij->p", values.conj(), values).real
    shared = np.empty(len(pairs), dtype=np.complex128)
    delta = corners[pairs[:, 1]] - corners[pairs[:, 0]]
    # Pairs with the same offset share one overlap window: each group is one vectorised
    # gather, so the Python work scales with the distinct offsets, not the pairs.
    key = (delta[:, 0] + size) * (2 * size + 1) + (delta[:, 1] + size)
    order = np.argsort(key, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
        if group.size == 0:
            continue
        dr, dc = (int(v) for v in delta[group[0]])
        mine = values[:, max(dr, 0) : size + min(dr, 0), max(dc, 0) : size + min(dc, 0)]
        theirs = values[:, max(-dr, 0) : size + min(-dr, 0), max(-dc, 0) : size + min(-dc, 0)]
        chunk = max(1, GATHER_ELEMENTS // max(mine[0].size, 1))
        for start in range(0, group.size, chunk):
            part = group[start : start + chunk]
            shared[part] = np.einsum(
                "pij,pij->p", mine[pairs[part, 0]].conj(), theirs[pairs[part, 1]]
            )
    own = np.arange(count)
    matrix = scipy.sparse.coo_array(
        (
            np.concatenate([shared, shared.conj(), energy.astype(np.complex128)]),
            (
                np.concatenate([pairs[:, 0], pairs[:, 1], own]),
                np.concatenate([pairs[:, 1], pairs[:, 0], own]),
            ),
        ),
        shape=(count, count),
    ).tocsr()
    matrix.eliminate_zeros()
    return matrix, energy


def _leading_eigenvector(block: scipy.sparse.csr_array, start: np.ndarray) -> np.ndarray:
    """The eigenvector of the largest eigenvalue of a Hermitian block."""
    if len(start) <= DENSE_EIGEN_LIMIT:
        _, vectors = np.linalg.eigh(block.toarray())
        return np.asarray(vectors[:, -1])
    # `start` is the eigenvector when no patch needs turning: a deterministic, close guess.
    initial = start.astype(np.complex128)
    try:
        _, vectors = eigsh(block, k=1, which="LA", v0=initial, tol=1e-8)
    except ArpackNoConvergence as error:
        vectors = error.eigenvectors
        if vectors.size == 0:
            return initial
    return np.asarray(vectors[:, 0])


def _refine_offsets(
    values: np.ndarray, windows: list[Window], shape: tuple[int, int], sweeps: int
) -> None:
    """Turn each weighted patch, in place, to the phase of the mosaic of all the others.

    Patches are visited one after another (Gauss-Seidel), each seeing its neighbours'
    latest rotation, which converges faster than updating them all at once.
    """
    mosaic = _accumulate(values, windows, shape)
    for _ in range(sweeps):
        for value, (target, local) in zip(values, windows, strict=True):
            mine = value[local]
            others = mosaic[target] - mine
            value *= np.exp(1j * np.angle(np.vdot(mine, others)))
            mosaic[target] = others + value[local]


def _accumulate(values: np.ndarray, windows: list[Window], shape: tuple[int, int]) -> np.ndarray:
    image = np.zeros(shape, dtype=values.dtype)
    for value, (target, local) in zip(values, windows, strict=True):
        image[target] += value[local]
    return image


def scanned_box(positions: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns spanned by the scan positions (patch centres), inside the image."""
    x, y = positions[:, 0], positions[:, 1]
    rows = slice(max(math.floor(y.min()), 0), min(math.ceil(y.max()) + 1, shape[0]))
    cols = slice(max(math.floor(x.min()), 0), min(math.ceil(x.max()) + 1, shape[1]))
    return rows, cols


def stitch_weight(stitching: str, probe: np.ndarray, crop: int) -> np.ndarray:
    """Per-pixel patch weight: |probe|² (ours) or the central crop×crop square (ptychopinn)."""
    n = probe.shape[-1]
    if stitching == "ours":
        return np.abs(probe.astype(np.complex128)) ** 2
    if not 0 < crop <= n:
        raise ValueError(f"stitch crop must be in 1..{n}, got {crop}")
    weight = np.zeros((n, n))
    start = n // 2 - crop // 2
    weight[start : start + crop, start : start + crop] = 1.0
    return weight


def stitching_record(stitching: str, crop: int) -> dict[str, object]:
    """How the test reconstruction was stitched, for the job's result."""
    if stitching == "ours":
        return {"method": "ours", "weight": "probe_intensity", "phase_sync": "eigenvector"}
    return {"method": "ptychopinn", "weight": "central_crop", "crop": crop, "phase_sync": "none"}


def reconstruct_patches(
    patches: np.ndarray, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> Reconstruction:
    """Stitch (S, C, N, N) patches predicted for the test samples; crop to the scanned box."""
    n = patches.shape[-1]
    positions = data.test_samples.positions.reshape(-1, 2)
    weight = stitch_weight(stitching, data.test_split.probe, crop)
    obj = data.test_split.obj
    align = ALIGN_ITERATIONS if stitching == "ours" else 0
    image, total = stitch(
        patches.reshape(-1, n, n), positions, obj.shape, weight, align_iterations=align
    )
    rows, cols = scanned_box(positions, obj.shape)
    mask = total[rows, cols] >= COVERAGE_FRACTION * weight.max()
    return Reconstruction(
        rec=image[rows, cols], gt=obj[rows, cols].astype(np.complex128), mask=mask
    )


def reconstruct(
    model: LitPtychoPINN, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> Reconstruction:
    """Predict every test group and stitch all member patches."""
    patches = predict_patches(model, data.network_test_inputs())
    return reconstruct_patches(patches, data, stitching, crop)


def comparison_png(result: Reconstruction, title: str = "") -> bytes:
    """Ground truth and reconstruction, amplitude and phase, and where they differ (PNG).

    Top row: ground truth and reconstruction, each pair on the ground truth's colour range.
    Bottom row: the amplitude error (reconstruction − truth) and the phase error (wrapped,
    after the global phase offset is removed), on symmetric ranges, zero in the middle.
    """
    gt_phase = np.angle(result.gt)
    rec_phase = align_phase(np.angle(result.rec), gt_phase, result.mask)
    amplitude = np.abs(result.gt)
    amp_error = np.where(result.mask, np.abs(result.rec) - amplitude, 0.0)
    phase_error = np.where(result.mask, np.angle(np.exp(1j * (rec_phase - gt_phase))), 0.0)
    amp_span = float(np.abs(amp_error).max()) or 1.0
    phase_span = float(np.abs(phase_error).max()) or np.pi
    panels = [
        ("ground truth amplitude", amplitude, "gray", amplitude.min(), amplitude.max()),
        ("reconstructed amplitude", np.abs(result.rec), "gray", amplitude.min(), amplitude.max()),
        ("ground truth phase", gt_phase, "twilight", gt_phase.min(), gt_phase.max()),
        ("reconstructed phase", rec_phase, "twilight", gt_phase.min(), gt_phase.max()),
        ("amplitude error", amp_error, "RdBu_r", -amp_span, amp_span),
        ("phase error (rad)", phase_error, "RdBu_r", -phase_span, phase_span),
    ]
    figure = Figure(figsize=(12, 6.4), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, 4)
    for axes in grid[1, 2:]:
        axes.set_axis_off()  # the error row has two panels
    slots = [*grid[0], grid[1, 0], grid[1, 1]]
    for axes, (name, image, cmap, low, high) in zip(slots, panels, strict=True):
        shown = axes.imshow(image, cmap=cmap, vmin=low, vmax=high)
        axes.set_title(name, fontsize=9)
        axes.set_axis_off()
        figure.colorbar(shown, ax=axes, shrink=0.7)
    if title:
        figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=80, format="png")
    return buffer.getvalue()


FIGURE_METRICS = (
    ("amp MAE", "amplitude_mae"),
    ("phase MAE", "phase_mae"),
    ("phase SSIM", "phase_ssim"),
    ("phase corr", "phase_correlation"),
)


def figure_title(config: TrainConfig, metrics: Mapping[str, Any]) -> str:
    """Which job the figure shows and how well it did, in two lines."""
    who = f"{config.label}: " if config.label else ""
    first = f"{who}gridsize {config.gridsize}, dose {config.nphotons:g}, {config.architecture}"
    scores = [
        f"{name} {value:.3g}"
        for name, key in FIGURE_METRICS
        if isinstance(value := metrics.get(key), int | float) and math.isfinite(value)
    ]
    return f"{first}\n{', '.join(scores)}" if scores else first
