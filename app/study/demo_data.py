"""A small demo study in seconds: Phase C at three doses and its Phase D views.

The default geometry is the one study.md §5 quotes: N = 64, a random scan of 1000
positions over a 400 × 400 px field (object 464²), so each split covers about 400 × 200 px
with ~500 positions. With the demo's overlap fractions (`DEMO_DESIGN`: dense 0.9, sparse
0.2) the dense view keeps ~45 % of them (214 of 476 train positions, probe discs overlapping
by 0.70 of a diameter) and sparse ~6 % (rejected under the 10 % rule): a demo run trains
baseline and dense for every dose and reports the sparse views as skipped.

Smaller copies (fewer positions) need a smaller field to stay dense enough: unless
`object_size` is given, the largest object side (in steps of 16 px) is chosen for which,
on the positions alone, every split keeps at least MIN_DENSE_POSITIONS for dense and
rejects sparse. E.g. 300 positions → object 336²; 150 → 224²; 100 → 176²."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.study.blocks import ProgressCallback
from app.study.design import StudyDesign
from app.study.overlap import OverlapReport, build_overlap_views
from app.study.scan import make_scan, train_mask
from app.study.selection import select_positions
from app.study.simulate import SCAN_STREAM, SimulationConfig, simulate_phase_c

logger = logging.getLogger(__name__)

DEMO_DOSES: tuple[float, ...] = (1e3, 1e4, 1e5)
DEMO_PATCH_SIZE = 64
DEMO_OBJECT_SIZE = 464
# The study's rule S = (1 − f)·N assumes a probe that fills the patch; the demo's probe disc
# is about 0.52·N across (33 px at N = 64), so at the study's f = 0.7 (S = 19.2 px) the kept
# discs overlap by only 0.36 of a diameter. f = 0.9 (S = 6.4 px) gives the dense view the
# measured probe-disc overlap the study means by 0.7 (linear 0.70, each disc 88 % covered
# by others, overlap_manifest.json's probe_overlap); sparse keeps the study's 0.2.
DEMO_DESIGN = StudyDesign(overlap_fractions={"dense": 0.9, "sparse": 0.2})
MIN_DENSE_POSITIONS = 16  # per split: plenty for gridsize-2 groups of K = 7 neighbours


def make_demo_data(
    out: str | Path,
    *,
    doses: Sequence[float] = DEMO_DOSES,
    n_positions: int = 1000,
    object_size: int | None = None,
    seed: int = 42,
    write_patches: bool = True,
    progress: ProgressCallback | None = None,
) -> tuple[Path, Path]:
    """Write `out/phase_c` and `out/phase_d`; return (phase_c_root, phase_d_root)."""
    out = Path(out)
    phase_c, phase_d = out / "phase_c", out / "phase_d"
    if object_size is None:
        object_size = demo_object_size(n_positions, seed)
    config = SimulationConfig(
        patch_size=DEMO_PATCH_SIZE,
        object_size=object_size,
        n_positions=n_positions,
        scan="random",
        seed=seed,
        doses=tuple(doses),
        write_patches=write_patches,
    )
    simulate_phase_c(config, phase_c, progress=progress)
    report = build_overlap_views(phase_c, phase_d, design=DEMO_DESIGN, progress=progress)
    _check_outcome(report, config.doses)
    return phase_c, phase_d


def demo_object_size(n_positions: int, seed: int = 42) -> int:
    """The largest object side (≤ 464, steps of 16) giving the demo's accepted/rejected views."""
    design = DEMO_DESIGN
    for size in range(DEMO_OBJECT_SIZE, DEMO_PATCH_SIZE + 32, -16):
        if _keeps_dense_rejects_sparse(design, size, n_positions, seed):
            return size
    raise ValueError(
        f"no demo field keeps ≥ {MIN_DENSE_POSITIONS} dense positions per split and rejects "
        f"sparse with {n_positions} positions; use more positions (e.g. 200)"
    )


def _keeps_dense_rejects_sparse(
    design: StudyDesign, size: int, n_positions: int, seed: int
) -> bool:
    # The same scan the simulator will draw, judged on positions alone (milliseconds).
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SCAN_STREAM,)))
    x, y = make_scan("random", n_positions, size, DEMO_PATCH_SIZE, rng)
    is_train = train_mask(y)
    for split in (is_train, ~is_train):
        dense, sparse = (
            select_positions(
                x[split], y[split], design.spacing_threshold(view, DEMO_PATCH_SIZE),
                design.min_acceptance,
            )
            for view in ("dense", "sparse")
        )  # fmt: skip
        if not dense.accepted or dense.n_accepted < MIN_DENSE_POSITIONS or sparse.accepted:
            return False
    return True


def _check_outcome(report: OverlapReport, doses: Sequence[float]) -> None:
    """Say so when a geometry does not give the demo's intended accepted/rejected views."""
    written = set(report.accepted_views())
    for dose in doses:
        if (dose, "dense") not in written:
            logger.warning("demo dose %g: the dense view was rejected", dose)
        if (dose, "sparse") in written:
            logger.warning("demo dose %g: the sparse view was accepted", dose)
