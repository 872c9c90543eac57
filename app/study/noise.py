"""Photon shot noise at a dose (study.md §4.4).

One dataset-wide scale s makes the mean total counts per pattern equal the dose:
s² = dose / mean Σ intensity. Counts ~ Poisson(s² · intensity); the files store
sqrt(counts) / s as float32, so (diffraction · s)² gives the counts back.

Seeds: the k-th block of B = block_patterns(N) patterns (8 at N = 128, 32 at N = 64) of
split i (0 train, 1 test) at dose d draws from SeedSequence(seed, spawn_key=(2, int(d), i,
k)). Fixed blocks make the noise independent of thread count and scheduling, and of
which other doses are simulated.
"""

from __future__ import annotations

import numpy as np

NOISE_STREAM = 2  # spawn_key[0]; the object uses 0 and the scan 1


def intensity_scale(energies: np.ndarray, dose: float) -> float:
    """s = sqrt(dose / mean Σ intensity): mean counts per pattern = dose."""
    return float(np.sqrt(dose / np.mean(energies)))


def noise_seed(
    seed: int, dose: float, split_index: int, block_index: int
) -> np.random.SeedSequence:
    """The seed of one block's Poisson draws."""
    key = (NOISE_STREAM, int(dose), split_index, block_index)
    return np.random.SeedSequence(seed, spawn_key=key)


def poisson_amplitudes(
    intensity: np.ndarray, scale: float, seed: np.random.SeedSequence
) -> tuple[np.ndarray, int]:
    """sqrt(Poisson(scale² · intensity)) / scale as float32, and the total counts drawn."""
    counts = np.random.default_rng(seed).poisson(intensity * np.float64(scale**2))
    amplitudes = np.sqrt(counts, dtype=np.float64)
    amplitudes /= scale
    return amplitudes.astype(np.float32), int(counts.sum())
