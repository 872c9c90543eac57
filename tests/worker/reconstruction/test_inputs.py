"""The split in pty-chi's units and geometry (numpy only, no pty-chi needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.study.contract import load_split
from worker.reconstruction.inputs import MARGIN, engine_inputs


def test_positions_map_to_the_same_object_pixels_as_our_simulator(bright_split: Path) -> None:
    split = load_split(bright_split)
    inputs = engine_inputs(split, None)
    top, _, left, _ = inputs.buffer
    n = split.N

    # pty-chi's patch starts at position + origin − (N − 1)/2 in the buffer, whose pixel
    # (r, c) is object pixel (r − MARGIN + top, c − MARGIN + left); ours at (y − N/2, x − N/2).
    row = split.ycoords + inputs.origin[0] - (n - 1) / 2 - MARGIN + top
    col = split.xcoords + inputs.origin[1] - (n - 1) / 2 - MARGIN + left
    np.testing.assert_allclose(row, split.ycoords - n / 2, atol=1e-12)
    np.testing.assert_allclose(col, split.xcoords - n / 2, atol=1e-12)


def test_the_buffer_covers_every_patch_and_maps_back_onto_the_object(bright_split: Path) -> None:
    split = load_split(bright_split)
    inputs = engine_inputs(split, None)
    top, bottom, left, right = inputs.buffer

    half = split.N / 2
    assert top <= split.ycoords.min() - half
    assert bottom >= split.ycoords.max() + half
    assert left <= split.xcoords.min() - half
    assert right >= split.xcoords.max() + half
    buffer = inputs.buffer_of(split.obj)
    assert buffer.shape == inputs.initial_object().shape
    image = inputs.object_image(buffer)
    np.testing.assert_array_equal(image[top:bottom, left:right], split.obj[top:bottom, left:right])
    assert image.shape == split.obj.shape


def test_intensities_are_counts_and_the_probe_round_trips(bright_split: Path) -> None:
    split = load_split(bright_split)
    inputs = engine_inputs(split, None)

    mean_counts = float(np.mean(inputs.intensities.sum(axis=(1, 2), dtype=np.float64)))
    assert abs(mean_counts / split.metadata["mean_counts_per_pattern"] - 1) < 1e-4
    # pty-chi's unnormalised FFT: its probe is N times smaller per unit of counts.
    assert inputs.probe_units == split.intensity_scale / split.N
    np.testing.assert_allclose(inputs.probe_in_split_units(inputs.probe), split.probe, rtol=1e-6)
