"""GET /manifests/{run}: each job carries the probe-disc overlap Phase D measured for its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.study.npz import NpzWriter
from app.study.overlap import build_overlap_views
from tests.api.conftest import StudyTree


def _gaussian_probe(size: int = 16, waist: float = 4.0) -> np.ndarray:
    rows, cols = np.indices((size, size)) - size / 2
    return np.exp(-(rows**2 + cols**2) / waist**2).astype(np.complex64)


def _simulated_tree(data_root: Path) -> StudyTree:
    """Phase C at dose 1000 (N = 16, a raster of step 5 px per split) and its Phase D."""
    phase_c, phase_d = data_root / "sim" / "phase_c", data_root / "sim" / "phase_d"
    index = np.arange(36)
    for split, y0 in (("train", 20.0), ("test", 120.0)):
        with NpzWriter(phase_c / "dose_1000" / f"patched_{split}.npz") as writer:
            writer.add("diffraction", np.ones((36, 16, 16), dtype=np.float32))
            writer.add("xcoords", 20 + (index % 6) * 5.0)
            writer.add("ycoords", y0 + (index // 6) * 5.0)
            writer.add("probeGuess", _gaussian_probe())
            writer.add("objectGuess", np.ones((200, 200), dtype=np.complex64))
    build_overlap_views(phase_c, phase_d, views=["dense"])
    return StudyTree(data_root=data_root, phase_c=phase_c, phase_d=phase_d)


def _manifest(client: TestClient, tree: StudyTree) -> dict[str, Any]:
    body = tree.body(filters={"dose": 1000}, design={"views": ["baseline", "dense"]},
                     dry_run=True)  # fmt: skip
    response = client.post("/runs", json=body)
    assert response.status_code == 201, response.text
    manifest = client.get(f"/manifests/{response.json()['id']}")
    assert manifest.status_code == 200, manifest.text
    document: dict[str, Any] = manifest.json()
    return document


def test_jobs_carry_the_overlap_of_their_own_files(client: TestClient, data_root: Path) -> None:
    tree = _simulated_tree(data_root)
    overlap = json.loads((tree.phase_d / "overlap_manifest.json").read_text())
    manifest = _manifest(client, tree)
    baseline, dense = manifest["jobs"]
    assert (baseline["view"], dense["view"]) == ("baseline", "dense")

    scans = {entry["split"]: entry["probe_overlap"] for entry in overlap["phase_c"]}
    assert baseline["probe_overlap"] == scans
    assert baseline["probe_overlap_reason"] is None
    views = {record["split"]: record["probe_overlap"] for record in overlap["records"]}
    assert dense["probe_overlap"] == views
    assert dense["probe_overlap_reason"] is None
    # The 5 px raster is kept whole for dense (S = 4.8 px) under a disc of about 8 px.
    assert dense["probe_overlap"]["train"]["median_spacing_px"] == 5.0
    assert dense["probe_overlap"]["train"]["nearest_neighbour_overlap"] > 0.2
    on_disk = json.loads((Path(manifest["artifact_root"]) / "training_manifest.json").read_text())
    assert on_disk["jobs"] == manifest["jobs"]


def test_without_a_phase_d_manifest_the_overlap_is_null_with_the_reason(
    client: TestClient, study: StudyTree
) -> None:
    manifest = _manifest(client, study)
    assert manifest["jobs"]
    for job in manifest["jobs"]:
        assert job["probe_overlap"] is None
        assert job["probe_overlap_reason"] == "no overlap_manifest.json under phase_d_root"
        for key in ("dose", "view", "gridsize", "train_data_path", "test_data_path", "result"):
            assert key in job, key
