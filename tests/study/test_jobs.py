"""Job enumeration and skip events (study.md §6) on real files in a temporary study tree."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.study.design import StudyDesign
from app.study.jobs import (
    Enumeration,
    Filters,
    MissingDataError,
    SkipCode,
    enumerate_jobs,
    write_dry_run_logs,
)

DOSES = (1e3, 1e4, 1e5)


def _write_npz(path: Path) -> None:
    # Enumeration checks existence only; a tiny real NPZ keeps the tree honest.
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, diffraction=np.zeros((1, 2, 2), dtype=np.float32))


def _phase_c(root: Path, doses: Iterable[float] = DOSES) -> None:
    for dose in doses:
        for split in ("train", "test"):
            _write_npz(root / f"dose_{int(dose)}" / f"patched_{split}.npz")


def _phase_d(
    root: Path,
    doses: Iterable[float] = DOSES,
    views: Iterable[str] = ("dense", "sparse"),
    *,
    layout: str = "primary",
    missing: Iterable[tuple[float, str]] = (),
) -> None:
    for dose in doses:
        for view in views:
            if (dose, view) in set(missing):
                continue
            for split in ("train", "test"):
                name = f"{view}_{split}.npz" if layout == "primary" else f"{split}.npz"
                _write_npz(root / f"dose_{int(dose)}" / view / name)


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    """The study's acceptance tree: Phase C complete; Phase D lacks sparse at dose 1000."""
    roots = {name: tmp_path / name for name in ("phase_c", "phase_d", "artifacts")}
    _phase_c(roots["phase_c"])
    _phase_d(roots["phase_d"], missing=[(1e3, "sparse")])
    return roots


def _enumerate(
    roots: dict[str, Path],
    filters: Filters | None = None,
    *,
    strict: bool = False,
    **design: object,
) -> Enumeration:
    return enumerate_jobs(
        design=StudyDesign.model_validate(design),
        phase_c_root=roots["phase_c"],
        phase_d_root=roots["phase_d"],
        artifact_root=roots["artifacts"],
        filters=filters or Filters(),
        strict=strict,
    )


def test_dose_1000_gives_baseline_and_dense_and_one_sparse_skip(study: dict[str, Path]) -> None:
    result = _enumerate(study, Filters(dose=1000))

    assert [(job.view, job.dose, job.gridsize) for job in result.jobs] == [
        ("baseline", 1000.0, 1),
        ("dense", 1000.0, 2),
    ]
    assert all(isinstance(job.dose, float) for job in result.jobs)
    assert len(result.skips) == 1
    skip = result.skips[0]
    assert (skip.dose, skip.view, skip.code) == (1000.0, "sparse", SkipCode.data_missing)
    assert "not found" in skip.reason
    assert "layouts checked" in skip.reason
    assert "{sparse_train.npz, sparse_test.npz}" in skip.reason
    assert "sparse/{train.npz, test.npz} (fallback)" in skip.reason
    assert (skip.train_exists, skip.test_exists) == (False, False)
    baseline = result.jobs[0]
    assert baseline.train_data_path == study["phase_c"] / "dose_1000" / "patched_train.npz"
    assert baseline.artifact_dir == study["artifacts"] / "dose_1000" / "baseline" / "gs1"
    assert baseline.log_path == baseline.artifact_dir / "train.log"
    assert result.jobs[1].test_data_path == study["phase_d"] / "dose_1000/dense/dense_test.npz"
    assert result.jobs[1].artifact_dir == study["artifacts"] / "dose_1000" / "dense" / "gs2"


def test_strict_refuses_and_names_every_missing_sparse_file(study: dict[str, Path]) -> None:
    with pytest.raises(MissingDataError) as caught:
        _enumerate(study, Filters(dose=1000), strict=True)

    sparse = study["phase_d"] / "dose_1000" / "sparse"
    expected = [
        sparse / n for n in ("sparse_train.npz", "sparse_test.npz", "train.npz", "test.npz")
    ]
    assert caught.value.missing == expected
    for path in expected:
        assert str(path) in str(caught.value)


def test_full_design_gives_eight_jobs_in_study_order_and_one_skip(study: dict[str, Path]) -> None:
    result = _enumerate(study)

    assert [(job.dose, job.view) for job in result.jobs] == [
        (1e3, "baseline"),
        (1e3, "dense"),
        (1e4, "baseline"),
        (1e4, "dense"),
        (1e4, "sparse"),
        (1e5, "baseline"),
        (1e5, "dense"),
        (1e5, "sparse"),
    ]
    assert [(skip.dose, skip.view) for skip in result.skips] == [(1000.0, "sparse")]


def test_fallback_layout_is_read(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in ("phase_c", "phase_d", "artifacts")}
    _phase_c(roots["phase_c"])
    _phase_d(roots["phase_d"], layout="fallback")

    result = _enumerate(roots)

    assert len(result.jobs) == 9
    assert result.skips == []
    dense = result.jobs[1]
    assert dense.train_data_path == roots["phase_d"] / "dose_1000" / "dense" / "train.npz"
    assert dense.test_data_path == roots["phase_d"] / "dose_1000" / "dense" / "test.npz"


def test_primary_layout_is_preferred_when_both_exist(study: dict[str, Path]) -> None:
    _phase_d(study["phase_d"], layout="fallback")

    result = _enumerate(study, Filters(dose=1e4, view="sparse"))

    (job,) = result.jobs
    assert job.train_data_path.name == "sparse_train.npz"
    assert job.test_data_path.name == "sparse_test.npz"


def test_files_split_across_layouts_do_not_make_a_view(study: dict[str, Path]) -> None:
    sparse = study["phase_d"] / "dose_1000" / "sparse"
    _write_npz(sparse / "sparse_train.npz")
    _write_npz(sparse / "test.npz")

    result = _enumerate(study, Filters(dose=1000, view="sparse"))

    assert result.jobs == []
    (skip,) = result.skips
    assert (skip.train_exists, skip.test_exists) == (True, True)
    assert str(sparse / "sparse_train.npz") in skip.reason
    layouts = skip.details["layouts_checked"]
    assert [entry["layout"] for entry in layouts] == ["primary", "fallback"]
    assert [(e["train_exists"], e["test_exists"]) for e in layouts] == [
        (True, False),
        (False, True),
    ]


def test_missing_phase_c_is_an_error_even_when_not_strict(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in ("phase_c", "phase_d", "artifacts")}
    _phase_c(roots["phase_c"], doses=[1e4])
    (roots["phase_c"] / "dose_10000" / "patched_test.npz").unlink()
    _phase_d(roots["phase_d"])

    with pytest.raises(MissingDataError) as caught:
        _enumerate(roots, strict=False)

    c = roots["phase_c"]
    assert caught.value.missing == [
        c / "dose_1000" / "patched_train.npz",
        c / "dose_1000" / "patched_test.npz",
        c / "dose_10000" / "patched_test.npz",
        c / "dose_100000" / "patched_train.npz",
        c / "dose_100000" / "patched_test.npz",
    ]
    assert "5 required data file(s) not found" in str(caught.value)


def test_filters_narrow_the_design_before_any_file_is_checked(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in ("phase_c", "phase_d", "artifacts")}
    _phase_c(roots["phase_c"], doses=[1e4])
    _phase_d(roots["phase_d"], doses=[1e5], views=["dense"])

    only_1e4 = _enumerate(roots, Filters(dose=1e4, view="baseline"), strict=True)
    dense_1e5 = _enumerate(roots, Filters(dose=100000.0, view="dense"), strict=True)

    assert [(job.dose, job.view) for job in only_1e4.jobs] == [(1e4, "baseline")]
    assert [(job.dose, job.view) for job in dense_1e5.jobs] == [(1e5, "dense")]
    assert only_1e4.skips == []
    assert dense_1e5.skips == []


def test_gridsize_filter_selects_views(study: dict[str, Path]) -> None:
    gs1 = _enumerate(study, Filters(gridsize=1))
    gs2 = _enumerate(study, Filters(gridsize=2, dose=1e5))

    assert [(job.view, job.gridsize) for job in gs1.jobs] == [("baseline", 1)] * 3
    assert gs1.skips == []
    assert [(job.view, job.gridsize) for job in gs2.jobs] == [("dense", 2), ("sparse", 2)]
    assert _enumerate(study, Filters(gridsize=1, view="dense")).jobs == []


def test_rejection_from_overlap_manifest_explains_the_skip(study: dict[str, Path]) -> None:
    record = {"dose": 1000.0, "view": "sparse", "status": "rejected", "strategy": "greedy"}
    records = [
        {**record, "split": "train", "direct_rate": 0.0, "greedy_rate": 0.008,
         "acceptance_rate": 0.008, "min_acceptance": 0.1},
        {**record, "split": "test", "direct_rate": 0.01, "greedy_rate": 0.05,
         "acceptance_rate": 0.05, "min_acceptance": 0.1},
        {**record, "view": "dense", "status": "accepted", "split": "train"},
    ]  # fmt: skip
    manifest = {"timestamp": "2025-01-01T00:00:00Z", "records": records}
    (study["phase_d"] / "overlap_manifest.json").write_text(json.dumps(manifest))

    (skip,) = _enumerate(study).skips

    assert skip.code == SkipCode.view_rejected
    assert "not found" in skip.reason
    assert "train: acceptance rate 0.8% below the minimum 10%" in skip.reason
    assert "(direct 0%, greedy 0.8%)" in skip.reason
    assert "test: acceptance rate 5% below the minimum 10%" in skip.reason
    assert [r["split"] for r in skip.details["rejections"]] == ["train", "test"]


@pytest.mark.parametrize("content", ["{not json", '{"records": 3}', "[1, 2]", '{"records": [7]}'])
def test_damaged_overlap_manifest_still_skips(study: dict[str, Path], content: str) -> None:
    (study["phase_d"] / "overlap_manifest.json").write_text(content)

    (skip,) = _enumerate(study).skips

    assert skip.code == SkipCode.data_missing
    assert "not found" in skip.reason
    assert "rejection" not in skip.reason


def test_relative_roots_give_absolute_paths(
    study: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = {name: Path(name) for name in study}

    result = _enumerate(relative, Filters(dose=1e4))

    paths = [p for job in result.jobs for p in (job.train_data_path, job.artifact_dir)]
    assert all(path.is_absolute() for path in paths)
    assert result.jobs[0].train_data_path == study["phase_c"] / "dose_10000/patched_train.npz"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"dose": -1}, "dose"), ({"view": "medium"}, "view"), ({"gridsize": 3}, "gridsize"),
     ({"doses": 1e3}, "doses")],
)  # fmt: skip
def test_filters_refuse_bad_values(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Filters.model_validate(fields)
    assert caught.value.errors()[0]["loc"] == (field,)


def test_dry_run_logs_name_each_job(study: dict[str, Path]) -> None:
    jobs = _enumerate(study, Filters(dose=1000)).jobs

    write_dry_run_logs(jobs)

    lines = [job.log_path.read_text().splitlines() for job in jobs]
    assert lines == [
        ["DRY RUN: baseline dose=1000.0 gridsize=1"],
        ["DRY RUN: dense dose=1000.0 gridsize=2"],
    ]


def test_records_are_json_ready(study: dict[str, Path]) -> None:
    result = _enumerate(study, Filters(dose=1000))

    job = result.jobs[0].to_record()
    skip = result.skips[0].to_record()

    assert job["train_data_path"] == str(study["phase_c"] / "dose_1000" / "patched_train.npz")
    assert json.loads(json.dumps(skip))["code"] == "data_missing"
    assert set(skip) == {"dose", "view", "reason", "code", "train_exists", "test_exists", "details"}


@pytest.mark.parametrize("doses", [[1000, 1000.5], [0.3, 0.6], [1e4, 1e3, 1e4 + 0.25]])
def test_design_refuses_doses_that_share_a_folder(doses: list[float]) -> None:
    with pytest.raises(ValidationError) as caught:
        StudyDesign(doses=doses)
    (error,) = caught.value.errors()
    assert error["loc"] == ("doses",)
    assert "share the folder dose_" in error["msg"]


def test_jobs_can_be_placed_under_another_artifact_root(
    study: dict[str, Path], tmp_path: Path
) -> None:
    result = _enumerate(study, Filters(dose=1000))

    placed = result.placed_under(tmp_path / "runs" / "7")

    assert [job.artifact_dir for job in placed.jobs] == [
        tmp_path / "runs/7/dose_1000/baseline/gs1",
        tmp_path / "runs/7/dose_1000/dense/gs2",
    ]
    assert all(job.log_path == job.artifact_dir / "train.log" for job in placed.jobs)
    assert [j.train_data_path for j in placed.jobs] == [j.train_data_path for j in result.jobs]
    assert placed.skips == result.skips


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_skip_events_never_follow_a_link(
    study: dict[str, Path], tmp_path: Path, linked: str
) -> None:
    outside = tmp_path / "outside"
    _write_npz(outside / "sparse_train.npz")
    sparse = study["phase_d"] / "dose_1000" / "sparse"
    if linked == "file":
        sparse.mkdir(parents=True)
        (sparse / "sparse_train.npz").symlink_to(outside / "sparse_train.npz")
    else:
        sparse.symlink_to(outside, target_is_directory=True)

    result = _enumerate(study, Filters(dose=1000, view="sparse"))

    assert result.jobs == []
    (skip,) = result.skips
    assert (skip.train_exists, skip.test_exists) == (False, False)
    assert "only found" not in skip.reason
    assert str(outside) not in json.dumps(skip.to_record())
