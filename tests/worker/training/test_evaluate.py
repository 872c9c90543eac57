"""Stitching geometry and the quality metrics."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from app.study.objects import make_object
from app.study.probe import make_probe
from app.study.scan import make_scan
from app.study.simulate import extract_patches
from worker.training.config import TrainConfig
from worker.training.evaluate import (
    ALIGN_ITERATIONS,
    COVERAGE_FRACTION,
    Reconstruction,
    comparison_png,
    figure_title,
    scanned_box,
    stitch,
    stitch_weight,
    stitching_record,
)
from worker.training.metrics import METRIC_KEYS, compare, frc50

N = 32


@pytest.fixture(scope="module")
def obj() -> np.ndarray:
    return make_object(120, np.random.default_rng(3)).astype(np.complex128)


def _scan(whole: bool) -> np.ndarray:
    grid = np.stack(np.meshgrid(np.arange(20, 101, 8.0), np.arange(20, 101, 8.0)), -1)
    xy = grid.reshape(-1, 2)
    return xy if whole else xy + np.random.default_rng(1).uniform(-2, 2, xy.shape)


@pytest.mark.parametrize("whole", [True, False])
def test_stitching_true_patches_rebuilds_the_object(obj: np.ndarray, whole: bool) -> None:
    xy = _scan(whole)
    patches = extract_patches(obj, xy[:, 0], xy[:, 1], N)
    image, total = stitch(patches, xy, obj.shape, np.ones((N, N)))
    rows, cols = scanned_box(xy, obj.shape)
    error = np.abs(image[rows, cols] - obj[rows, cols])
    assert total[rows, cols].min() > 0
    if whole:
        assert error.max() < 1e-12
    else:
        # Sub-pixel patches are bilinear samples; shifting them back costs a little sharpness.
        assert np.median(error) < 0.02 * np.abs(obj).mean()


def test_stitching_aligns_per_patch_phase_offsets(obj: np.ndarray) -> None:
    xy = _scan(whole=True)
    patches = extract_patches(obj, xy[:, 0], xy[:, 1], N)
    offsets = np.random.default_rng(2).normal(0.0, 0.5, len(patches))
    rotated = patches * np.exp(1j * offsets)[:, None, None]
    rows, cols = scanned_box(xy, obj.shape)
    weight = np.ones((N, N))
    naive, _ = stitch(rotated, xy, obj.shape, weight)
    aligned, _ = stitch(rotated, xy, obj.shape, weight, align_iterations=5)
    truth = obj[rows, cols]

    def error(image: np.ndarray) -> float:
        crop = image[rows, cols]
        global_phase = np.angle(np.vdot(crop, truth))
        return float(np.abs(crop * np.exp(1j * global_phase) - truth).mean())

    assert error(naive) > 5 * error(aligned)


SYNC_N = 64


@pytest.fixture(scope="module")
def sync_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object, probe weight, positions): the simulator's N = 64 pieces, 150 random
    positions on a 200-pixel object, each used twice as gridsize-2 groups reuse them."""
    rng = np.random.default_rng(11)
    obj = make_object(200, rng).astype(np.complex128)
    x, y = make_scan("random", 150, 200, SYNC_N, rng)
    xy = np.repeat(np.stack([x, y], axis=1), 2, axis=0)
    return obj, stitch_weight("ours", make_probe(SYNC_N), crop=20), xy


def _phase_correlation(
    patches: np.ndarray,
    xy: np.ndarray,
    obj: np.ndarray,
    weight: np.ndarray,
    align: int,
    shape: tuple[int, int] | None = None,
) -> float:
    """Stitch as `reconstruct_patches` does and score the scanned box's covered pixels."""
    shape = shape or obj.shape
    image, total = stitch(patches, xy, shape, weight, align_iterations=align)
    rows, cols = scanned_box(xy, shape)
    mask = total[rows, cols] >= COVERAGE_FRACTION * weight.max()
    return compare(image[rows, cols], obj[rows, cols], mask)["phase_correlation"]


def _random_offsets(patches: np.ndarray, seed: int) -> np.ndarray:
    turns = np.random.default_rng(seed).uniform(-np.pi, np.pi, len(patches))
    return patches * np.exp(1j * turns)[:, None, None]


def test_phase_sync_undoes_random_per_patch_phase_offsets(
    sync_scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    obj, weight, xy = sync_scene
    patches = _random_offsets(extract_patches(obj, xy[:, 0], xy[:, 1], SYNC_N), seed=4)

    synced = _phase_correlation(patches, xy, obj, weight, ALIGN_ITERATIONS)
    as_they_are = _phase_correlation(patches, xy, obj, weight, 0)

    assert synced >= 0.98, synced
    assert as_they_are < 0.5, as_they_are  # the offsets alone wreck the mosaic
    assert stitching_record("ours", 20) == {
        "method": "ours", "weight": "probe_intensity", "phase_sync": "eigenvector",
    }  # fmt: skip


def test_phase_sync_leaves_patches_without_offsets_as_they_are(
    sync_scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    obj, weight, xy = sync_scene
    patches = extract_patches(obj, xy[:, 0], xy[:, 1], SYNC_N)

    synced, total = stitch(patches, xy, obj.shape, weight, align_iterations=ALIGN_ITERATIONS)
    plain, _ = stitch(patches, xy, obj.shape, weight)
    covered = total >= COVERAGE_FRACTION * weight.max()

    assert _phase_correlation(patches, xy, obj, weight, ALIGN_ITERATIONS) >= 0.99
    # Sub-pixel patches are bilinear samples that agree only nearly: a few mrad is all.
    assert np.abs(np.angle(synced[covered] / plain[covered])).max() < 0.01


def test_phase_sync_aligns_disconnected_clusters_each_on_its_own(
    sync_scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    obj = make_object(320, np.random.default_rng(12)).astype(np.complex128)
    _, weight, _ = sync_scene
    rng = np.random.default_rng(13)
    near = rng.uniform(32, 90, (40, 2))
    far = rng.uniform(230, 288, (40, 2))
    alone = np.array([[160.0, 160.0]])  # overlaps nobody
    xy = np.concatenate([near, far, alone])
    patches = _random_offsets(extract_patches(obj, xy[:, 0], xy[:, 1], SYNC_N), seed=5)
    # A canvas 20 pixels short of the object cuts the far cluster's patches at its edge.
    shape = (300, 300)

    for cluster in (slice(0, 40), slice(40, 80)):
        score = _phase_correlation(
            patches[cluster], xy[cluster], obj, weight, ALIGN_ITERATIONS, shape
        )
        assert score >= 0.98, (cluster, score)
    image, total = stitch(patches, xy, shape, weight, align_iterations=ALIGN_ITERATIONS)
    assert np.isfinite(image).all()
    assert total[150:170, 150:170].min() > 0  # the lone patch is stitched too


def test_metrics_of_a_perfect_reconstruction_ignore_a_global_phase(obj: np.ndarray) -> None:
    mask = np.ones(obj.shape, dtype=bool)
    perfect = compare(obj * np.exp(1j * 2.5), obj, mask)
    assert set(perfect) == set(METRIC_KEYS)
    assert perfect["amplitude_mae"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["phase_mae"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["phase_correlation"] == pytest.approx(1.0)
    assert perfect["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["phase_frc50"] == pytest.approx(0.5)


def test_flat_phase_has_no_correlation_and_noise_lowers_every_score(obj: np.ndarray) -> None:
    mask = np.ones(obj.shape, dtype=bool)
    flat = compare(np.abs(obj).astype(np.complex128), obj, mask)
    assert abs(flat["phase_correlation"]) < 1e-12
    rng = np.random.default_rng(0)
    noisy = obj * np.exp(1j * rng.normal(0, 0.3, obj.shape)) * rng.uniform(0.8, 1.2, obj.shape)
    scores = compare(noisy, obj, mask)
    assert 0 < scores["phase_correlation"] < 1
    assert scores["amplitude_mae"] > 0.01
    assert scores["amplitude_ssim"] < 0.9
    assert scores["phase_psnr"] < 40


def test_frc50_falls_when_fine_detail_is_lost(obj: np.ndarray) -> None:
    from scipy.ndimage import gaussian_filter

    phase = np.angle(obj)
    assert frc50(phase, phase) == pytest.approx(0.5)
    assert frc50(gaussian_filter(phase, 3.0), phase) < frc50(gaussian_filter(phase, 1.0), phase)


def test_ptychopinn_stitching_averages_central_crops(obj: np.ndarray) -> None:
    xy = _scan(whole=True)
    patches = extract_patches(obj, xy[:, 0], xy[:, 1], N)
    weight = stitch_weight("ptychopinn", np.ones((N, N)), crop=12)
    assert weight.sum() == 144
    assert weight[N // 2 - 6 : N // 2 + 6, N // 2 - 6 : N // 2 + 6].all()
    # Corrupt everything outside the crop: the stitched image must not see it.
    corrupted = patches.copy()
    corrupted[:, weight == 0] = 0
    image, total = stitch(corrupted, xy, obj.shape, weight)
    rows, cols = scanned_box(xy, obj.shape)
    covered = total[rows, cols] > 0
    # 8-pixel grid steps, 12-pixel crops: the scanned box is fully covered.
    assert covered.all()
    assert np.abs(image[rows, cols] - obj[rows, cols]).max() < 1e-12
    assert stitching_record("ptychopinn", 12) == {
        "method": "ptychopinn", "weight": "central_crop", "crop": 12, "phase_sync": "none",
    }  # fmt: skip
    with pytest.raises(ValueError, match="crop"):
        stitch_weight("ptychopinn", np.ones((N, N)), crop=N + 1)


def _colored_share_of_bottom_row(path: Path) -> float:
    """Share of the figure's lower half in strong red or blue: the error maps' signal."""
    image = matplotlib.image.imread(path)[..., :3]
    bottom = image[image.shape[0] // 2 :]
    return float((np.abs(bottom[..., 0] - bottom[..., 2]) > 0.3).mean())


def test_figure_adds_error_maps_that_show_where_the_reconstruction_is_wrong(
    obj: np.ndarray, tmp_path: Path
) -> None:
    mask = np.ones(obj.shape, dtype=bool)
    rng = np.random.default_rng(5)
    noisy = obj * np.exp(1j * rng.normal(0, 0.8, obj.shape)) * rng.uniform(0.5, 1.5, obj.shape)
    for name, rec in (("perfect", obj), ("noisy", noisy)):
        png = comparison_png(Reconstruction(rec=rec, gt=obj, mask=mask))
        (tmp_path / f"{name}.png").write_bytes(png)

    height, width = matplotlib.image.imread(tmp_path / "noisy.png").shape[:2]
    assert (width, height) == (960, 512)  # two rows: the pair of images and the errors
    perfect = _colored_share_of_bottom_row(tmp_path / "perfect.png")
    noisy_share = _colored_share_of_bottom_row(tmp_path / "noisy.png")
    assert noisy_share > 3 * perfect, (noisy_share, perfect)


def test_figure_title_names_the_job_and_its_scores() -> None:
    config = TrainConfig(Path(), Path(), Path(), 2, 1e4, label="run 3, job 7, dense")
    metrics = {"amplitude_mae": 0.0412, "phase_mae": 0.2391, "phase_ssim": float("nan")}

    title = figure_title(config, metrics)

    assert title.splitlines() == [
        "run 3, job 7, dense: gridsize 2, dose 10000, unet",
        "amp MAE 0.0412, phase MAE 0.239",
    ]
