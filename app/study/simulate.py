"""Phase C (study.md §4): simulate one dataset per dose under the NPZ contract.

Pipeline: procedural object and probe (or a probe file), a scan, the noiseless far field
of every position (computed once, shared by all doses), then per dose one dataset-wide
intensity scale, Poisson counts and the top/bottom split, written as
`<out>/dose_<int>/patched_{train,test}.npz` plus `<out>/run_manifest.json`.

Determinism: everything derives from `seed` through `numpy.random.SeedSequence`:
object = SeedSequence(seed, spawn_key=(0,)), scan = (1,), and the Poisson noise of block k
of split i at dose d = (2, int(d), i, k) (see app.study.noise). The blocks are fixed, so the
arrays depend neither on the number of threads nor on which other doses are simulated.

Per dose, the noise is drawn block by block while the two split files are written side
by side, so drawing, checksumming and disk writes overlap, and no per-dose copy of the
patterns is ever held in memory.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.files import write_json_atomic
from app.study.blocks import (
    ProgressCallback,
    block_patterns,
    chunk_slices,
    default_workers,
    run_blocks,
)
from app.study.contract import ContractError, read_square_complex
from app.study.forward import centring_probe, extract_patches, forward_intensity, intensity_into
from app.study.objects import make_object
from app.study.phase_c_io import run_manifest, write_dose
from app.study.probe import load_probe, make_probe
from app.study.scan import make_scan, split_midpoint, train_mask
from app.study.scene import PRESETS, Scene, SimulationConfig

__all__ = [
    "PRESETS",
    "PhaseCResult",
    "Scene",
    "SimulationConfig",
    "extract_patches",
    "forward_intensity",
    "simulate_phase_c",
]

logger = logging.getLogger(__name__)

OBJECT_STREAM, SCAN_STREAM = 0, 1


@dataclass(frozen=True)
class PhaseCResult:
    """Where Phase C went: the root, its manifest and one entry per dose."""

    root: Path
    manifest_path: Path
    datasets: list[dict[str, Any]] = field(default_factory=list)


def _stream(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def make_scene(config: SimulationConfig) -> Scene:
    """Draw the object and scan (and make or load the probe) for `config`."""
    object_rng = _stream(config.seed, OBJECT_STREAM)
    scan_rng = _stream(config.seed, SCAN_STREAM)
    if config.object_path is not None:
        obj = load_object(config.object_path, config.object_size)
        object_source = str(config.object_path)
    else:
        obj = make_object(config.object_size, object_rng).astype(np.complex64)
        object_source = "procedural"
    if config.probe_path is not None:
        probe = load_probe(config.probe_path, config.patch_size)
        source = str(config.probe_path)
    else:
        probe, source = make_probe(config.patch_size), "procedural"
    x, y = make_scan(
        config.scan, config.n_positions, config.object_size, config.patch_size, scan_rng
    )
    is_train = train_mask(y)
    if is_train.all() or not is_train.any():
        raise ValueError(f"the {config.scan} scan of {config.n_positions} positions has one row")
    order = np.concatenate([np.flatnonzero(is_train), np.flatnonzero(~is_train)])
    return Scene(
        obj=obj,
        probe=probe.astype(np.complex64),
        xcoords=x[order],
        ycoords=y[order],
        n_train=int(is_train.sum()),
        midpoint=split_midpoint(y),
        probe_source=source,
        object_source=object_source,
    )


def load_object(path: str | Path, size: int) -> np.ndarray:
    """The `objectGuess` of an NPZ file, checked to be complex (size, size) and finite."""
    obj = read_square_complex(
        path,
        "objectGuess",
        size,
        what="object",
        missing="a complex (H, W) object",
        expected=f"complex array of shape ({size}, {size}), the simulation's object size",
    )
    if not np.all(np.isfinite(obj)):
        raise ContractError(path, "objectGuess", "finite values", "NaN or infinite values")
    return np.ascontiguousarray(obj, dtype=np.complex64)


def noiseless_intensities(
    scene: Scene, pool: Executor, progress: ProgressCallback | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Far-field intensity of every position, float32 (n, N, N), and its sum per pattern."""
    size = scene.probe.shape[0]
    intensity = np.empty((scene.n, size, size), dtype=np.float32)
    energies = np.empty(scene.n, dtype=np.float64)
    probe = centring_probe(scene.probe)

    def run(block: slice) -> None:
        energies[block] = intensity_into(
            intensity[block], scene.obj, probe, scene.xcoords[block], scene.ycoords[block]
        )

    blocks = chunk_slices(scene.n, block_patterns(size))
    run_blocks(pool, run, blocks, "forward model", progress)
    return intensity, energies


def simulate_phase_c(
    config: SimulationConfig,
    out_root: str | Path,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> PhaseCResult:
    """Simulate every dose of `config` into `out_root` (Phase C layout) and write its manifest."""
    root = Path(out_root)
    scene = make_scene(config)
    datasets: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        intensity, energies = noiseless_intensities(scene, pool, progress)
        for dose in config.doses:
            entry = write_dose(root, config, scene, intensity, energies, dose, pool, progress)
            datasets.append(entry)
            logger.info("dose %g: scale %.4g, mean counts %.1f", dose, entry["intensity_scale"],
                        entry["mean_counts"])  # fmt: skip
    manifest_path = root / "run_manifest.json"
    write_json_atomic(manifest_path, run_manifest(root, config, scene, datasets))
    return PhaseCResult(root=root, manifest_path=manifest_path, datasets=datasets)
