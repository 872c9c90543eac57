"""HDF5 inputs: Ptychodus product files and CXI files, read into the same split as an NPZ."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.study.contract import ContractError, load_split
from worker.training.__main__ import main
from worker.training.h5_inputs import HC_J_M, load_input, read_product

PIXEL_M = 2e-8  # object pixel


def _product(split_path: Path, target: Path) -> Path:
    """A Ptychodus product: probe modes, object layers, positions in metres about a centre."""
    split = load_split(split_path)
    height, width = split.obj.shape
    centre = (3e-6, -1e-6)
    with h5py.File(target, "w") as h5:
        h5.attrs["name"] = "tiny"
        h5.attrs["probe_energy_eV"] = 8000.0
        h5.create_dataset("probe", data=split.probe[None])
        obj = h5.create_dataset("object", data=split.obj[None])
        obj.attrs["center_x_m"], obj.attrs["center_y_m"] = centre
        obj.attrs["pixel_width_m"] = obj.attrs["pixel_height_m"] = PIXEL_M
        x_m = (split.xcoords - width / 2 + 0.5) * PIXEL_M + centre[0]
        y_m = (split.ycoords - height / 2 + 0.5) * PIXEL_M + centre[1]
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        h5.create_dataset("probe_position_indexes", data=np.arange(split.n))
    return target


def _cxi(split_path: Path, target: Path, *, with_probe: bool = True) -> Path:
    """A CXI file: raw counts, sample translations (minus the beam's position), geometry."""
    split = load_split(split_path)
    assert split.intensity_scale is not None
    counts = np.rint((split.diffraction.astype(np.float64) * split.intensity_scale) ** 2)
    energy_j, distance, detector_pixel = 8000 * 1.602176634e-19, 2.0, 1e-4
    # choose the detector so that λ·z / (N·Δ) is PIXEL_M
    distance = PIXEL_M * split.N * detector_pixel / (HC_J_M / energy_j)
    translation = np.stack([-split.xcoords, -split.ycoords, np.zeros(split.n)], 1) * PIXEL_M
    mask = np.zeros((split.N, split.N), dtype=np.uint32)
    mask[0, 0] = 1
    with h5py.File(target, "w") as h5:
        h5["cxi_version"] = 160
        h5.create_dataset("entry_1/instrument_1/detector_1/data", data=counts.astype(np.float32))
        h5["entry_1/data_1/data"] = h5["entry_1/instrument_1/detector_1/data"]
        h5["entry_1/instrument_1/detector_1/distance"] = distance
        h5["entry_1/instrument_1/detector_1/x_pixel_size"] = detector_pixel
        h5["entry_1/instrument_1/detector_1/y_pixel_size"] = detector_pixel
        h5["entry_1/instrument_1/detector_1/mask"] = mask
        h5["entry_1/instrument_1/source_1/energy"] = energy_j
        if with_probe:
            h5["entry_1/instrument_1/source_1/probe"] = split.probe
        h5["entry_1/sample_1/geometry_1/translation"] = translation
    return target


def test_product_positions_become_object_pixels(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    split = load_split(tiny_split[1])
    product = read_product(_product(tiny_split[1], tmp_path / "p.h5"))
    np.testing.assert_allclose(product.xcoords, split.xcoords, atol=1e-7)
    np.testing.assert_allclose(product.ycoords, split.ycoords, atol=1e-7)
    np.testing.assert_array_equal(product.probe, split.probe)
    assert product.metadata["name"] == "tiny"


def test_npz_diffraction_with_a_product_for_probe_object_and_positions(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    with np.load(tiny_split[1]) as npz:
        bare = {k: npz[k] for k in npz.files if k not in ("objectGuess", "Y")}
    bare["xcoords"] = bare["ycoords"] = np.zeros(len(bare["xcoords"]))  # wrong on purpose
    np.savez(tmp_path / "scan.npz", **bare)
    product = _product(tiny_split[1], tmp_path / "p.h5")
    split = load_input(tmp_path / "scan.npz", product=product)
    reference = load_split(tiny_split[1])
    np.testing.assert_allclose(split.xcoords, reference.xcoords, atol=1e-7)
    np.testing.assert_array_equal(split.obj, reference.obj)
    assert split.has_object
    assert "probe, object and positions from" in split.notes[-1]


def test_cxi_reads_counts_translations_geometry_and_mask(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    reference = load_split(tiny_split[1])
    split = load_input(_cxi(tiny_split[1], tmp_path / "scan.cxi"), object_required=False)
    assert split.intensity_scale == pytest.approx(1.0)
    scale = reference.intensity_scale
    assert scale is not None
    np.testing.assert_allclose(split.diffraction, reference.diffraction * scale, rtol=1e-3)
    # positions up to the canvas origin, at PIXEL_M per pixel
    shift = split.xcoords - reference.xcoords
    np.testing.assert_allclose(shift, shift[0], atol=1e-6)
    np.testing.assert_allclose(
        split.ycoords - reference.ycoords, (split.ycoords - reference.ycoords)[0], atol=1e-6
    )
    assert split.detector_mask is not None
    assert not split.detector_mask[0, 0]
    assert int(split.detector_mask.sum()) == split.N**2 - 1
    assert any("intensities" in note for note in split.notes)
    assert not split.has_object
    with pytest.raises(ContractError, match="product"):
        load_input(tmp_path / "scan.cxi")  # training needs an object to score against


def test_cxi_without_probe_needs_a_product_and_a_product_alone_has_no_diffraction(
    tiny_split: tuple[Path, Path], tmp_path: Path
) -> None:
    cxi = _cxi(tiny_split[1], tmp_path / "scan.cxi", with_probe=False)
    with pytest.raises(ContractError, match="probe"):
        load_input(cxi, object_required=False)
    product = _product(tiny_split[1], tmp_path / "p.h5")
    split = load_input(cxi, product=product)
    assert split.has_object
    assert split.probe.shape == (64, 64)
    with pytest.raises(ContractError, match="holds none"):
        load_input(product)


@pytest.mark.slow  # real training
def test_predict_takes_a_cxi_file(
    tiny_split: tuple[Path, Path], tmp_path: Path, make_config: object
) -> None:
    from worker.training import train

    config = make_config(epochs=1, logger="none", n_groups=16)  # type: ignore[operator]
    train(config)
    cxi = _cxi(tiny_split[1], tmp_path / "scan.cxi")
    out = tmp_path / "rec.npz"
    bundle = str(config.out_dir / "model_bundle.pt")
    assert main(["predict", "--bundle", bundle, "--data", str(cxi), "--out", str(out)]) == 0
    with np.load(out) as npz:
        metadata = json.loads(str(npz["_metadata"]))
        assert np.isfinite(npz["reconstruction"]).all()
    assert any("CXI" in note for note in metadata["data_notes"])
