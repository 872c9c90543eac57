"""Rows to public models: a job's progress columns become `progress`, epoch of epochs."""

from __future__ import annotations

from app.models import Job, JobStatus
from app.public import job_public


def test_job_progress_carries_epoch_and_total() -> None:
    job = Job(
        id=1,
        run_id=1,
        position=0,
        dose=1e4,
        view="dense",
        gridsize=1,
        train_data_path="train.npz",
        test_data_path="test.npz",
        log_path="train.log",
        artifact_dir="job",
        status=JobStatus.running,
        progress_epoch=2,
        progress_epochs=5,
        progress_step=40,
        progress_loss=0.25,
    )
    public = job_public(job, [])
    assert public.progress.model_dump() == {"epoch": 2, "epochs": 5, "step": 40, "loss": 0.25}
