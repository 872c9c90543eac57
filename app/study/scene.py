"""What Phase C simulates: the configuration (`SimulationConfig`, `PRESETS`) and the
drawn `Scene` (object, probe, scan). Shared by the simulator and the writer of its files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.study.design import check_dose_dirnames
from app.study.scan import SCAN_KINDS


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; `PRESETS` holds the demo and the study's fly64 sizes."""

    patch_size: int = 64
    object_size: int = 464
    n_positions: int = 1000
    scan: str = "random"
    seed: int = 42
    doses: tuple[float, ...] = (1e3, 1e4, 1e5)
    probe_path: Path | None = None
    # An NPZ whose `objectGuess` (complex, object_size × object_size) replaces the procedural
    # object, e.g. a PtychoPINN file's or a reconstruction of a real sample.
    object_path: Path | None = None
    write_patches: bool = True  # the optional ground-truth `Y`

    def __post_init__(self) -> None:
        if self.patch_size < 16 or self.patch_size % 2:
            raise ValueError(f"patch size must be an even number >= 16, got {self.patch_size}")
        if self.object_size <= self.patch_size + 1:
            raise ValueError(
                f"object size {self.object_size} must exceed patch size {self.patch_size} + 1"
            )
        if self.scan not in SCAN_KINDS:
            raise ValueError(f"scan must be one of {', '.join(SCAN_KINDS)}, got {self.scan!r}")
        if self.n_positions < 2:
            raise ValueError(f"n_positions must be at least 2, got {self.n_positions}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not self.doses or any(not np.isfinite(d) or d <= 0 for d in self.doses):
            raise ValueError(f"doses must be positive and finite, got {self.doses}")
        check_dose_dirnames(self.doses)
        object.__setattr__(self, "doses", tuple(sorted(float(d) for d in self.doses)))


PRESETS: dict[str, SimulationConfig] = {
    "demo": SimulationConfig(),
    "fly64": SimulationConfig(patch_size=128, object_size=464, n_positions=10_304),
}


@dataclass(frozen=True)
class Scene:
    """Object, probe and scan, with positions ordered train first (the files' order)."""

    obj: np.ndarray  # complex64 (H, W)
    probe: np.ndarray  # complex64 (N, N)
    xcoords: np.ndarray
    ycoords: np.ndarray
    n_train: int
    midpoint: float
    probe_source: str
    object_source: str = "procedural"

    @property
    def n(self) -> int:
        return int(self.xcoords.shape[0])

    def split_slice(self, split: str) -> slice:
        return slice(0, self.n_train) if split == "train" else slice(self.n_train, self.n)
