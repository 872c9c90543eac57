"""The data module: split files through the study contract, into network samples."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from app.study.contract import ContractError, SplitData, load_split
from app.study.simulate import extract_patches
from worker.training.config import TrainConfig
from worker.training.grouping import Groups, covering_groups, training_groups

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class Samples:
    """Network inputs for one split: grouped diffraction, offsets and absolute positions."""

    diffraction: np.ndarray  # float32 (S, C, N, N)
    offsets: np.ndarray  # float32 (S, C, 2)
    positions: np.ndarray  # float64 (S, C, 2): absolute (x, y) of every member
    indices: np.ndarray  # int64 (S, C)

    @property
    def size(self) -> int:
        return int(self.indices.shape[0])

    def dataset(self) -> TensorDataset:
        return TensorDataset(torch.from_numpy(self.diffraction), torch.from_numpy(self.offsets))


def positions_xy(split: SplitData) -> np.ndarray:
    """(n, 2) scan positions as (x, y)."""
    return np.stack([split.xcoords, split.ycoords], axis=1)


def make_samples(split: SplitData, groups: Groups) -> Samples:
    """Gather the patterns and positions of each group."""
    return Samples(
        diffraction=np.ascontiguousarray(split.diffraction[groups.indices]),
        offsets=groups.offsets,
        positions=positions_xy(split)[groups.indices],
        indices=groups.indices,
    )


def ground_truth_patches(split: SplitData) -> np.ndarray:
    """Ground-truth patches: `Y` when the file carries a valid one, else cut from the object."""
    if split.Y is not None:
        return split.Y
    patches = extract_patches(split.obj, split.xcoords, split.ycoords, split.N)
    return patches.astype(np.complex64)


def intensity_scale(split: SplitData, nphotons: float) -> float:
    """The dataset's intensity scale from metadata, else the estimate the simulator implies.

    The simulator picks the scale s so that the mean total counts per pattern equal the dose,
    and stores diffraction = sqrt(counts) / s; so s ≈ sqrt(dose / mean Σ diffraction²).
    """
    if split.intensity_scale is not None and split.intensity_scale > 0:
        return split.intensity_scale
    total = float(np.mean(np.sum(split.diffraction.astype(np.float64) ** 2, axis=(1, 2))))
    if not total > 0:
        raise ContractError(split.path, "diffraction", "some non-zero amplitudes", "all zeros")
    estimate = math.sqrt(nphotons / total)
    logger.info("%s: no intensity_scale in metadata; estimated %.6g", split.path, estimate)
    return estimate


def input_scale(diffraction: np.ndarray) -> float:
    """Factor that gives the network inputs unit root-mean-square."""
    rms = float(np.sqrt(np.mean(diffraction.astype(np.float64) ** 2)))
    return 1.0 / rms if rms > 0 else 1.0


class PtychoDataModule(L.LightningDataModule):
    """Train samples from the train split; validation and evaluation on the test split."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self._loaded = False

    def setup(self, stage: str | None = None) -> None:
        """Load both splits once (safe to call again)."""
        if self._loaded:
            return
        cfg = self.config
        self.train_split = load_split(cfg.train_path)
        self.test_split = load_split(cfg.test_path)
        self._check_compatible()
        self.train_samples = make_samples(
            self.train_split,
            training_groups(
                positions_xy(self.train_split),
                gridsize=cfg.gridsize,
                n_groups=cfg.n_groups,
                neighbor_count=cfg.neighbor_count,
                seed=cfg.seed,
            ),
        )
        self.test_samples = make_samples(
            self.test_split,
            covering_groups(
                positions_xy(self.test_split),
                gridsize=cfg.gridsize,
                neighbor_count=cfg.neighbor_count,
                seed=cfg.seed,
            ),
        )
        self.intensity_scale = intensity_scale(self.train_split, cfg.nphotons)
        self.input_scale = input_scale(self.train_split.diffraction)
        self._loaded = True

    def _check_compatible(self) -> None:
        train, test = self.train_split, self.test_split
        if test.N != train.N:
            raise ContractError(
                test.path,
                "diffraction",
                f"patterns of size {train.N} like the train split",
                f"size {test.N}",
            )
        needed = self.config.gridsize**2
        for split in (train, test):
            if split.n < needed:
                raise ContractError(
                    split.path,
                    "diffraction",
                    f"at least {needed} patterns for gridsize {self.config.gridsize}",
                    f"{split.n}",
                )

    @property
    def n(self) -> int:
        return self.train_split.N

    @property
    def probe(self) -> np.ndarray:
        return self.train_split.probe

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.train_samples, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        # Evaluation needs no gradients, so larger batches cost little memory and save steps.
        return self._loader(self.test_samples, shuffle=False, batch_size=EVAL_BATCH_SIZE)

    def _loader(
        self, samples: Samples, *, shuffle: bool, batch_size: int | None = None
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        workers = self.config.num_workers
        return DataLoader(
            samples.dataset(),
            batch_size=batch_size or self.config.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
