"""A reconstruction scored like a training job's test reconstruction (worker.training.assess).

The region is the same: the box the scan positions span, and in it the pixels whose summed
|probe|² reaches COVERAGE_FRACTION of the probe's peak (a network's stitching weights its
patches by |probe|²; here the object comes whole from the engine, so only the mask is
computed). The flat object is the one assess.py scores: phase 0, the amplitude the split's
own counts imply through the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from app.study.contract import SplitData
from worker.training.assess import CONVENTIONS, Assessment, flat_level, score, skill
from worker.training.data import PtychoDataModule, positions_xy, probe_factor
from worker.training.evaluate import (
    COVERAGE_FRACTION,
    Reconstruction,
    scanned_box,
    stitch,
    stitch_weight,
)

STITCHING = {"method": "ptychi", "weight": "probe_intensity", "phase_sync": "none"}


@dataclass(frozen=True)
class _OneSplit:
    """What `flat_level` reads of a data module, for a split reconstructed on its own."""

    test_split: SplitData
    test_probe: np.ndarray


def covered_region(split: SplitData) -> tuple[tuple[slice, slice], np.ndarray]:
    """(rows, columns) of the scanned box and the mask of its illuminated pixels."""
    n = split.N
    positions = positions_xy(split)
    weight = stitch_weight("ours", split.probe, n)
    ones = np.ones((split.n, n, n), dtype=np.complex64)
    _, total = stitch(ones, positions, split.obj.shape, weight)
    rows, cols = scanned_box(positions, split.obj.shape)
    return (rows, cols), total[rows, cols] >= COVERAGE_FRACTION * weight.max()


def split_flat_level(split: SplitData) -> float:
    """assess.flat_level for this split, its probe in the diffraction's units."""
    probe = (split.probe * probe_factor(split)).astype(np.complex64)
    return flat_level(cast(PtychoDataModule, _OneSplit(split, probe)), "test")


def assess_object(image: np.ndarray, split: SplitData) -> Assessment:
    """Both metric blocks for `image` (on the split's object grid) and the flat object's."""
    (rows, cols), mask = covered_region(split)
    gt = split.obj[rows, cols].astype(np.complex128)
    result = Reconstruction(rec=image[rows, cols].astype(np.complex128), gt=gt, mask=mask)
    flat = Reconstruction(
        rec=np.full(gt.shape, split_flat_level(split), dtype=np.complex128), gt=gt, mask=mask
    )
    scores, flat_scores = score(result), score(flat)
    return Assessment(
        metrics=scores,
        baselines={"flat": flat_scores},
        skill={c: skill(scores[c], flat_scores[c], c) for c in CONVENTIONS},
        reconstruction=result,
        stitching=dict(STITCHING),
        patches=np.zeros((0, split.N, split.N), dtype=np.complex64),
    )
