"""Errors: one family mapped in one place, no server insides in answers, causes kept."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app
from app.api.errors import install_error_handlers
from app.errors import Conflict, InvalidTransition, NotFound, PathRefused, RequestInvalid
from worker.executors.forkserver import describe_exception
from worker.training.divergence import DivergenceCheck, TrainingDiverged

APP_DIR = Path(app.__file__).resolve().parent


def _app_raising(error: BaseException) -> FastAPI:
    api = FastAPI()
    install_error_handlers(api)

    @api.get("/boom")
    def boom() -> None:
        raise error

    return api


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("run", 7), 404),
        (RequestInvalid.at(["body", "x"], "bad", "value_error"), 422),
        (InvalidTransition("a succeeded job cannot become queued"), 409),
        (Conflict("taken"), 409),
        (PathRefused("/d/runs/1/train.log", "/d", "goes through the symlink 'runs'"), 409),
    ],
)
def test_each_domain_error_has_one_http_answer(error: Exception, code: int) -> None:
    response = TestClient(_app_raising(error)).get("/boom")
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"


def test_not_found_names_the_entity() -> None:
    error = NotFound("job", 12)
    assert (error.entity, error.key, str(error)) == ("job", 12, "job 12 not found")


def test_an_unexpected_error_is_a_bare_500(tmp_path: Path) -> None:
    error = RuntimeError(f"broke while reading {APP_DIR / 'crud.py'}")
    client = TestClient(_app_raising(error), raise_server_exceptions=False)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "Traceback" not in response.text
    assert str(APP_DIR) not in response.text


def test_no_http_exception_below_the_api() -> None:
    offenders = [
        str(path.relative_to(APP_DIR))
        for path in APP_DIR.rglob("*.py")
        if "HTTPException" in path.read_text(encoding="utf-8")
        and not path.is_relative_to(APP_DIR / "api")
    ]
    assert offenders == []


def test_the_openapi_lists_the_error_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"401", "404", "422"} <= set(paths["/runs/{run_id}"]["get"]["responses"])
    assert {"401", "404", "409", "422"} <= set(paths["/jobs/{job_id}/cancel"]["post"]["responses"])
    assert {"401", "413", "422"} <= set(paths["/runs"]["post"]["responses"])
    log = paths["/jobs/{job_id}/log"]["get"]["responses"]
    assert "application/json" in log["404"]["content"]  # errors are JSON on a text route
    for path in ("/jobs/{job_id}/log", "/jobs/{job_id}/artifacts/{name}", "/jobs/{job_id}/history"):
        assert "409" in paths[path]["get"]["responses"], path  # a path refused at use
    assert "401" not in paths["/health"]["get"]["responses"]


def _nested_failure() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError("the split has no key 'diffraction'") from exc


def test_a_job_error_keeps_its_cause_and_last_frames_without_server_paths() -> None:
    try:
        _nested_failure()
    except ValueError as exc:
        text = describe_exception(exc)
    assert text.startswith("ValueError: the split has no key 'diffraction'")
    assert "KeyError: 'missing'" in text  # the cause, chained
    assert "in _nested_failure" in text  # the last frames
    assert 'File "tests/security/test_errors.py"' in text
    assert not re.search(r'File "/', text), text  # no absolute source paths


def test_a_huge_message_leaves_room_for_the_frames() -> None:
    try:
        raise RuntimeError("x" * 100_000)
    except RuntimeError as exc:
        text = describe_exception(exc)
    assert len(text) < 8_000
    assert "Traceback" in text
    assert "in test_a_huge_message_leaves_room_for_the_frames" in text


def test_a_non_finite_loss_stops_training_with_that_cause() -> None:
    trainer = SimpleNamespace(current_epoch=2, global_step=17)
    check = DivergenceCheck()
    check.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.5)}, None, 0)  # type: ignore[arg-type]
    with pytest.raises(TrainingDiverged, match=r"^training diverged: loss is NaN at epoch 3"):
        check.on_train_batch_end(trainer, None, torch.tensor(math.nan), None, 0)  # type: ignore[arg-type]
    with pytest.raises(TrainingDiverged, match="loss is inf at epoch 3"):
        check.on_train_batch_end(trainer, None, {"loss": math.inf}, None, 0)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_diverging_job_fails_with_training_diverged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real training on tiny data whose loss turns NaN in epoch 2: the job says so."""
    from app.study.simulate import SimulationConfig, simulate_phase_c
    from worker.training import TrainConfig, train
    from worker.training.module import LitPtychoPINN

    config = SimulationConfig(patch_size=64, object_size=176, n_positions=96, doses=(1e5,))
    simulate_phase_c(config, tmp_path / "phase_c", workers=1)
    dose = tmp_path / "phase_c" / "dose_100000"
    original = LitPtychoPINN.loss

    def loss_turning_nan(self: LitPtychoPINN, *args: Any) -> torch.Tensor:
        value = original(self, *args)
        return value * math.nan if self.current_epoch >= 1 else value

    monkeypatch.setattr(LitPtychoPINN, "loss", loss_turning_nan)
    job = TrainConfig(
        train_path=dose / "patched_train.npz",
        test_path=dose / "patched_test.npz",
        out_dir=tmp_path / "job",
        gridsize=1,
        nphotons=1e5,
        epochs=3,
        n_groups=32,
        accelerator="cpu",
    )
    with pytest.raises(TrainingDiverged, match="training diverged: loss is NaN at epoch 2"):
        train(job)
    log = (tmp_path / "job" / "train.log").read_text()
    assert "ERROR TrainingDiverged: training diverged: loss is NaN at epoch 2" in log
    assert not (tmp_path / "job" / "result.json").exists()
