"""Put a submitted run's jobs into the states a worker would leave them in, through the queue.

Progress, results and artifacts are written the way the worker writes them (train.log
epoch lines, result.json, reconstruction.png, metrics.csv), without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sqlalchemy import Engine

from app import queue
from app.queue import ClaimedJob, Progress

METRICS = {
    "amplitude_mae": 0.05,
    "phase_mae": 0.2,
    "amplitude_psnr": 20.0,
    "phase_psnr": 18.0,
    "amplitude_ssim": 0.6,
    "phase_ssim": 0.5,
    "amplitude_frc50": 0.1,
    "phase_frc50": 0.08,
    "phase_correlation": 0.7,
}
BASELINES = {
    "flat": {"ours": {**METRICS, "phase_ssim": 0.1, "phase_correlation": 0.0}},
    "input_only": {"ours": {**METRICS, "phase_ssim": 0.2}},
}


def claim(engine: Engine, worker: str = "worker-a", executor: str = "local") -> ClaimedJob:
    """Claim the next queued job, as a worker with this executor does."""
    job = queue.claim_next_job(engine=engine, worker=worker, lease_s=60, executor=executor)
    assert job is not None, "no queued job to claim"
    return job


def report_epoch(engine: Engine, job: ClaimedJob, epoch: int, epochs: int, loss: float) -> None:
    """A heartbeat with progress, and the epoch line training writes once an epoch ends."""
    progress = Progress(epoch=epoch, epochs=epochs, step=10 * epoch, loss=loss)
    reply = queue.heartbeat(
        engine=engine, job_id=job.job_id, lease_token=job.lease_token, lease_s=60, progress=progress
    )
    assert not reply.lost
    _log(job, f"epoch {epoch}/{epochs} train_loss={loss:.6g} val_loss={loss * 1.1:.6g}")


def succeed(
    engine: Engine,
    job: ClaimedJob,
    epochs: int,
    result: dict[str, Any] | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """Write the job's artifacts and complete it, as the worker does after training.

    `result` adds or replaces result.json entries (e.g. `collapsed`, `flat_val_loss`)."""
    out = Path(job.artifact_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / "reconstruction.png")
    (out / "logs" / "csv").mkdir(parents=True, exist_ok=True)
    (out / "logs" / "csv" / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    extra = result or {}
    result = {
        "status": "succeeded",
        "final_loss": 0.25,
        "epochs_completed": epochs,
        "duration_s": 12.5,
        "metrics": {**METRICS, **metrics},
        "baselines": BASELINES,
        "reconstruction_png": "reconstruction.png",
        **extra,
    }
    (out / "result.json").write_text(json.dumps(result))
    _log(job, "done status=succeeded")
    done = queue.complete_job(
        engine=engine, job_id=job.job_id, lease_token=job.lease_token, result=result
    )
    assert done
    return result


def fail(engine: Engine, job: ClaimedJob, error: str = "RuntimeError: boom") -> None:
    """Fail the attempt; with max_attempts 1 the job ends failed."""
    assert queue.fail_attempt(
        engine=engine, job_id=job.job_id, lease_token=job.lease_token, error=error
    )


def write_png(path: Path) -> None:
    """A small real PNG (what the worker's comparison figure is, in miniature)."""
    figure = Figure(figsize=(2, 1))
    FigureCanvasAgg(figure)
    figure.add_subplot().imshow(np.random.default_rng(0).random((8, 8)))
    figure.savefig(path, format="png", dpi=40)


def _log(job: ClaimedJob, message: str) -> None:
    path = Path(job.log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(f"2026-01-01T00:00:00Z {message}\n")
