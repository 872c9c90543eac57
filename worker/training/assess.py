"""A job's assessment: both metric blocks for the model and for two trivial baselines.

- "ours": `metrics.compare` (the service's own conventions, study.md §8);
- "ptychopinn": `metrics_ptychopinn.compare_ptychopinn` (PtychoPINN's eval_reconstruction).

Baselines, stitched and scored exactly like the model's reconstruction:
- "flat": a flat object, phase 0 and one amplitude, the level the test split's own counts
  imply through the probe (Parseval: mean Σ amplitude² = level² · Σ |probe|²); no learning;
- "input_only": `physics.backprojection` of each pattern, the map `inputs="amplitudes+backprop"`
  hands the network; what that input is worth without any network.

Skill against the flat object, per metric with a perfect value p:
(model − flat) / (p − flat): 1 is perfect, 0 no better than a flat object, negative worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.training.data import PtychoDataModule
from worker.training.evaluate import (
    Reconstruction,
    predict_patches,
    reconstruct_patches,
    reference_loss,
    stitching_record,
)
from worker.training.metrics import compare
from worker.training.metrics_ptychopinn import compare_ptychopinn
from worker.training.module import LitPtychoPINN
from worker.training.physics import backprojection

BASELINES = ("flat", "input_only")
CONVENTIONS = ("ours", "ptychopinn")
PERFECT = {
    "ours": {
        "amplitude_mae": 0.0, "phase_mae": 0.0, "amplitude_ssim": 1.0, "phase_ssim": 1.0,
        "phase_correlation": 1.0,
    },
    "ptychopinn": {
        "amplitude_mae": 0.0, "phase_mae": 0.0, "amplitude_ssim": 1.0, "phase_ssim": 1.0,
        "amplitude_ms_ssim": 1.0, "phase_ms_ssim": 1.0,
    },
}  # fmt: skip

Blocks = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Assessment:
    """Metrics of the model and of the baselines, in both conventions, and the skill."""

    metrics: Blocks  # convention → metric → value
    baselines: dict[str, Blocks]  # baseline → convention → metric → value
    skill: dict[str, dict[str, float | None]]  # convention → metric → skill vs flat
    reconstruction: Reconstruction
    stitching: dict[str, object]
    patches: np.ndarray  # the model's (S, C, N, N) test patches, before stitching

    def to_result(self) -> dict[str, Any]:
        """The result.json entries: ours stays under `metrics`, the rest beside it."""
        return {
            "metrics": self.metrics["ours"],
            "metrics_ptychopinn": self.metrics["ptychopinn"],
            "metric_conventions": {
                "metrics": "ours: study.md §8 (aligned global phase, absolute amplitude)",
                "metrics_ptychopinn": "PtychoPINN eval_reconstruction (plane, mean-scaled)",
            },
            "baselines": self.baselines,
            "skill_vs_flat": self.skill,
            "stitching": self.stitching,
        }


def score(result: Reconstruction) -> Blocks:
    """Both metric blocks for one stitched reconstruction."""
    if not result.mask.any():
        raise ValueError("the scan illuminates no pixel of the object")
    # Pixels the scan did not reach take the reconstruction's mean in both blocks.
    filled = np.where(result.mask, result.rec, result.rec[result.mask].mean())
    return {
        "ours": compare(result.rec, result.gt, result.mask),
        "ptychopinn": compare_ptychopinn(filled, result.gt),
    }


def flat_level(data: PtychoDataModule, which: str = "test") -> float:
    """The flat object's amplitude that matches the mean counts of a split ("test", or
    "train" for the train split's validation samples)."""
    split = data.test_split if which == "test" else data.train_split
    probe = data.test_probe if which == "test" else data.probe
    energy = float(np.mean(np.sum(split.diffraction.astype(np.float64) ** 2, (1, 2))))
    probe_energy = float(np.sum(np.abs(probe.astype(np.complex128)) ** 2))
    return math.sqrt(energy / probe_energy) if probe_energy > 0 else 1.0


def flat_loss(model: LitPtychoPINN, data: PtychoDataModule, which: str = "val") -> float:
    """The loss of the flat object (`flat_level`) on the `which` samples under the model's
    current physics: what a network that learned nothing still scores."""
    split = data.test_split if which == "test" else data.train_split
    level = flat_level(data, "test" if which == "test" else "train")
    n = split.diffraction.shape[-1]
    flat = np.full((split.diffraction.shape[0], n, n), level, dtype=np.complex64)
    return reference_loss(model, data, which, patches=flat)


def input_only_patches(data: PtychoDataModule) -> np.ndarray:
    """The back-projection of every test sample's patterns, (S, C, N, N) complex."""
    probe = torch.from_numpy(data.test_probe)
    with torch.no_grad():
        estimate = backprojection(torch.from_numpy(data.test_samples.diffraction), probe)
    return estimate.numpy()


def skill(
    model: dict[str, float], flat: dict[str, float], convention: str
) -> dict[str, float | None]:
    """(model − flat) / (perfect − flat) per metric with a perfect value."""
    out: dict[str, float | None] = {}
    for key, perfect in PERFECT[convention].items():
        gap = perfect - flat[key]
        out[key] = (model[key] - flat[key]) / gap if abs(gap) > 1e-12 else None
    return out


def assess(
    model: LitPtychoPINN, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> Assessment:
    """Reconstruct the test split with the model and the baselines; score them all."""
    shape = data.test_samples.diffraction.shape
    patches = {
        "model": predict_patches(model, data.network_test_inputs()),
        "flat": np.full(shape, flat_level(data), dtype=np.complex64),
        "input_only": input_only_patches(data),
    }
    stitched = {k: reconstruct_patches(v, data, stitching, crop) for k, v in patches.items()}
    scores = {name: score(result) for name, result in stitched.items()}
    return Assessment(
        metrics=scores["model"],
        baselines={name: scores[name] for name in BASELINES},
        skill={c: skill(scores["model"][c], scores["flat"][c], c) for c in CONVENTIONS},
        reconstruction=stitched["model"],
        stitching=stitching_record(stitching, crop),
        patches=patches["model"],
    )
