"""The data module: split files through the study contract, into network samples."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from app.study.contract import ContractError, SplitData
from app.study.diffraction import metadata_nphotons
from app.study.simulate import extract_patches
from worker.training.config import TrainConfig
from worker.training.grouping import Groups, covering_groups, training_groups
from worker.training.h5_inputs import load_input

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 64
VALIDATION_STREAM = 7
# Relative mismatch between the job's dose and what a file records or shows that is reported.
DOSE_TOLERANCE = 0.1
# Mean Σ amplitude² / Σ |probe|² is the object's mean |O|² over the probe when probe and
# diffraction share units (as the simulator's, and PtychoPINN's, files do); outside this
# range they cannot.
PROBE_UNITS_RANGE = (0.02, 2.0)


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

    def take(self, rows: np.ndarray) -> Samples:
        """The samples at `rows`, in that order."""
        return Samples(
            diffraction=np.ascontiguousarray(self.diffraction[rows]),
            offsets=self.offsets[rows],
            positions=self.positions[rows],
            indices=self.indices[rows],
        )


def hold_out(samples: Samples, fraction: float, seed: int) -> tuple[Samples, Samples]:
    """(train, validation): a seeded `fraction` of the samples held out, at least one.

    Whole samples are held out, as Keras' validation_split in PtychoPINN does; at gridsize 2
    a held-out group may share patterns with training groups (the loss is self-supervised,
    so this measures fit, not generalisation to new positions: that is the test split's job).
    """
    if fraction <= 0 or samples.size < 2:
        return samples, samples.take(np.zeros(0, dtype=np.int64))
    count = min(max(1, round(fraction * samples.size)), samples.size - 1)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(VALIDATION_STREAM,)))
    held = np.zeros(samples.size, dtype=bool)
    held[rng.choice(samples.size, size=count, replace=False)] = True
    return samples.take(np.flatnonzero(~held)), samples.take(np.flatnonzero(held))


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
    """Ground-truth patches: `Y` when the file carries a valid one, else cut from the object.

    A patch may reach past the object's edge (PtychoPINN's simulators place positions up to
    N/2 from the edge and jitter them): there the object is empty, zero, as those simulators
    model it.
    """
    if split.Y is not None:
        return split.Y
    margin = split.N // 2 + 2
    padded = np.pad(split.obj, margin)
    patches = extract_patches(padded, split.xcoords + margin, split.ycoords + margin, split.N)
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


# Probes whose total intensities agree this closely are the same probe.
PROBE_GAIN_TOLERANCE = 1e-6


def input_scale(diffraction: np.ndarray, architecture: str = "unet") -> float:
    """Factor for the network's input amplitudes.

    unet: unit root-mean-square. ptychopinn: PtychoPINN's normalisation, a mean total
    intensity of (N/2)² per pattern, which is a root-mean-square of 1/2.
    """
    rms = float(np.sqrt(np.mean(diffraction.astype(np.float64) ** 2)))
    target = 0.5 if architecture == "ptychopinn" else 1.0
    return target / rms if rms > 0 else 1.0


def probe_factor(split: SplitData) -> float:
    """g with stored amplitudes ≈ |F(g · probe · object)|: 1 when the units already agree.

    Otherwise (a probe from a reconstruction, diffraction in raw counts) Parseval with a
    flat, fully transmitting object: g² = mean Σ amplitude² / Σ |probe|².
    """
    energy = float(np.mean(np.sum(split.diffraction.astype(np.float64) ** 2, axis=(1, 2))))
    probe_energy = float(np.sum(np.abs(split.probe.astype(np.complex128)) ** 2))
    if not probe_energy > 0 or not energy > 0:
        return 1.0
    ratio = energy / probe_energy
    low, high = PROBE_UNITS_RANGE
    return 1.0 if low <= ratio <= high else math.sqrt(ratio)


def dose_notes(split: SplitData, nphotons: float, scale: float) -> list[str]:
    """Warnings when the job's dose disagrees with the file's metadata or its own counts."""
    notes = []
    recorded = metadata_nphotons(split.metadata)
    if recorded is not None and abs(recorded / nphotons - 1) > DOSE_TOLERANCE:
        notes.append(
            f"WARNING {split.path.name}: _metadata records nphotons={recorded:g}, "
            f"the job says {nphotons:g}"
        )
    counts = float(np.mean(np.sum(split.diffraction.astype(np.float64) ** 2, axis=(1, 2))))
    counts *= scale**2
    if abs(counts / nphotons - 1) > DOSE_TOLERANCE:
        notes.append(
            f"WARNING {split.path.name}: mean counts per pattern {counts:.4g} at intensity "
            f"scale {scale:.6g}, the job says nphotons={nphotons:g}"
        )
    return notes


class PtychoDataModule(L.LightningDataModule):
    """Train and validation samples from the train split; evaluation on the test split.

    `notes` lists what was converted while reading the files and where the job's dose
    disagrees with them, for the job's log.
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self._loaded = False

    def setup(self, stage: str | None = None) -> None:
        """Load both splits once (safe to call again)."""
        if self._loaded:
            return
        cfg = self.config
        self.train_split = load_input(cfg.train_path)
        self.test_split = load_input(cfg.test_path)
        self._check_compatible()
        everything = make_samples(
            self.train_split,
            training_groups(
                positions_xy(self.train_split),
                gridsize=cfg.gridsize,
                n_groups=cfg.n_groups,
                neighbor_count=cfg.neighbor_count,
                seed=cfg.seed,
            ),
        )
        self.train_samples, self.val_samples = hold_out(everything, cfg.val_fraction, cfg.seed)
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
        self.probe_factor = probe_factor(self.train_split)
        self.input_scale = input_scale(self.train_split.diffraction, cfg.architecture)
        self.notes = [
            f"{split.path.name}: {note}"
            for split in (self.train_split, self.test_split)
            for note in split.notes
        ]
        self.notes += dose_notes(self.train_split, cfg.nphotons, self.intensity_scale)
        if self.test_input_gain != 1.0:
            self.notes.append(
                f"the test split's probe is {self.test_input_gain**-2:.4g}x as bright as the "
                f"train split's: its patterns reach the network scaled by "
                f"{self.test_input_gain:.6g}"
            )
        if self.probe_factor != 1.0:
            self.notes.append(
                f"probeGuess and diffraction are in different units: probe scaled by "
                f"{self.probe_factor:.6g} (Parseval, fully transmitting object)"
            )
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
        """The probe in the units of the stored diffraction (see `probe_factor`)."""
        return (self.train_split.probe * self.probe_factor).astype(np.complex64)

    @property
    def test_probe(self) -> np.ndarray:
        return (self.test_split.probe * self.probe_factor).astype(np.complex64)

    @property
    def test_input_gain(self) -> float:
        """How much brighter the train split's probe is than the test split's (amplitude).

        The network learned the object from patterns lit by the train probe; a test split
        simulated or measured with a brighter or dimmer probe (PtychoPINN's simulator scales
        each file's probe to its own dose) is brought to the train probe's units by this
        factor before it reaches the network, so its amplitudes are read as the train's.
        """
        train = float(np.sum(np.abs(self.train_split.probe.astype(np.complex128)) ** 2))
        test = float(np.sum(np.abs(self.test_split.probe.astype(np.complex128)) ** 2))
        if not (train > 0 and test > 0) or abs(train / test - 1) < PROBE_GAIN_TOLERANCE:
            return 1.0
        return math.sqrt(train / test)

    def network_test_inputs(self) -> np.ndarray:
        """The test samples' patterns as the network is given them (`test_input_gain`)."""
        gain = self.test_input_gain
        patterns = self.test_samples.diffraction
        return patterns if gain == 1.0 else (patterns * np.float32(gain)).astype(np.float32)

    @property
    def detector_mask(self) -> np.ndarray | None:
        return self.train_split.detector_mask

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader(self.train_samples, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]] | list[Any]:
        if self.val_samples.size == 0:
            return []  # no validation: Lightning skips the loop
        # Evaluation needs no gradients, so larger batches cost little memory and save steps.
        return self._loader(self.val_samples, shuffle=False, batch_size=EVAL_BATCH_SIZE)

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
