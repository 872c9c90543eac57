"""Dispatch latency: `POST /runs` → the training child running the job, on a warm worker.

A real API (`ptychojobs serve`) and a real worker (`python -m worker`) run on a temporary
SQLite file; the worker's executor is the training executor with two timestamps added
(child entered `train`, first step reported). Each trial posts a one-job run, reads the
timestamps, then cancels the job. Beside it, the same job in a fresh Python process, which
is what `python -m worker.training` (or a spawned child) pays: torch and Lightning imported
first.

    .venv/bin/python bench/dispatch.py [--trials 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, start_worker, stop_process
from app.queue import ClaimedJob
from app.study.simulate import SimulationConfig, simulate_phase_c

TIMES_FILE = "dispatch_times.json"
KEYS = ("to_train", "to_first_step")
TRAINING = {"epochs": 1, "batch_size": 64}
EXECUTION = {"accelerator": "cpu", "logger": "none"}


class _FirstStep:
    """Passes progress on, and notes when the first step was reported."""

    def __init__(self, reporter: Any, times: dict[str, float], path: Path) -> None:
        self._reporter, self._times, self._path = reporter, times, path

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        if "first_step" not in self._times:
            self._times["first_step"] = time.time()
            self._path.write_text(json.dumps(self._times))
        self._reporter.on_progress(epoch=epoch, epochs=epochs, step=step, loss=loss)

    def should_stop(self) -> bool:
        return bool(self._reporter.should_stop())


def timed_train_job(job: ClaimedJob, reporter: Any) -> dict[str, Any]:
    """Runs in the worker's child: the real training, with timestamps."""
    from worker.executors.training import train_job

    path = Path(job.artifact_dir) / TIMES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    times = {"child_started": time.time()}
    path.write_text(json.dumps(times))
    return train_job(job, _FirstStep(reporter, times, path))


def TimedTrainingExecutor(settings: Any) -> Any:  # noqa: N802 -- named like the class it stands in for
    """The training executor, timing its children (`PTYCHOJOBS_EXECUTOR` points here)."""
    from worker.executors.training import TRAINING_PRELOAD, TrainingExecutor

    preload = (*TRAINING_PRELOAD, "bench.dispatch")
    return TrainingExecutor(settings, target=timed_train_job, preload=preload)


FRESH_PROCESS = """
import json, os, sys, time
times = {"process_started": float(sys.argv[1]), "interpreter_up": time.time()}
from pathlib import Path
from worker.training import TrainConfig, train
import worker.training.runner
times["imported"] = time.time()
class Reporter:
    def on_progress(self, **_):
        times["first_step"] = time.time()
        print(json.dumps(times), flush=True)
        os._exit(0)
    def should_stop(self):
        return False
train(TrainConfig(**json.loads(sys.argv[2])), reporter=Reporter())
"""


def fresh_process_trial(phase_c: Path, out: Path) -> dict[str, float]:
    """The job trained by a new interpreter, up to its first step."""
    config = {
        "train_path": str(phase_c / "dose_1000" / "patched_train.npz"),
        "test_path": str(phase_c / "dose_1000" / "patched_test.npz"),
        "out_dir": str(out),
        "gridsize": 1,
        "nphotons": 1000.0,
        **TRAINING,
        **EXECUTION,
    }
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(started), json.dumps(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    times: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "to_train": times["imported"] - started,
        "to_first_step": times["first_step"] - started,
    }


def warm_worker_trial(client: PtychoClient) -> dict[str, float]:
    """POST a one-job run; read when its child started and stepped; cancel it."""
    body = {
        "phase_c_root": "study/phase_c",
        "phase_d_root": "study/phase_d",
        "filters": {"dose": 1000.0, "view": "baseline"},
        "training": TRAINING,
        "execution": EXECUTION,
    }
    posted = time.time()
    run = client.submit_run(body)
    answered = time.time()
    path = Path(run["jobs"][0]["artifact_dir"]) / TIMES_FILE
    times = _wait_for_times(path)
    client.cancel_run(run["id"])
    client.wait_for_run(run["id"], timeout_s=120, poll_s=0.2)
    return {
        "post": answered - posted,
        "to_train": times["child_started"] - posted,
        "to_first_step": times["first_step"] - posted,
    }


def _wait_for_times(path: Path, timeout_s: float = 300.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            times: dict[str, float] = json.loads(path.read_text() or "{}")
            if "first_step" in times:
                return times
        time.sleep(0.01)
    raise TimeoutError(f"no first step recorded in {path}")


def _wait_for_line(log: Path, text: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} never appeared in {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one trial of each")
    args = parser.parse_args()
    trials = 1 if args.quick else args.trials
    os.chdir(REPO)  # the worker loads this file as `bench.dispatch`
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = SimulationConfig(object_size=160, n_positions=64, doses=(1e3,), write_patches=False)
        simulate_phase_c(small, root / "study" / "phase_c", workers=1)
        (root / "study" / "phase_d").mkdir()
        warm = run_service(root, trials)
        fresh = [
            fresh_process_trial(root / "study" / "phase_c", root / f"fresh{i}")
            for i in range(trials)
        ]
    print_table(warm, fresh)


def run_service(root: Path, trials: int) -> list[dict[str, float]]:
    port = free_port()
    env = service_env(
        data_root=root,
        database_url=f"sqlite:///{root / 'ptychojobs.db'}",
        executor="bench.dispatch:TimedTrainingExecutor",
        heartbeat_s="0.2",
        cancel_grace_s="0",
        log_level="INFO",
    )
    api_log, worker_log = root / "api.log", root / "worker.log"
    with api_log.open("wb") as api_out, worker_log.open("wb") as worker_out:
        api = start_api(host="127.0.0.1", port=port, env=env, output=api_out)
        client = PtychoClient(f"http://127.0.0.1:{port}")
        try:
            client.wait_until_healthy(timeout_s=120)  # the API migrates the database first
            worker = start_worker(env=env, output=worker_out)
            try:
                _wait_for_line(worker_log, "started")  # fork server warm, idle
                time.sleep(1.0)
                return [warm_worker_trial(client) for _ in range(trials)]
            finally:
                stop_process(worker, grace_s=30)
        finally:
            client.close()
            stop_process(api, grace_s=30)


def print_table(warm: list[dict[str, float]], fresh: list[dict[str, float]]) -> None:
    def best(rows: list[dict[str, float]], key: str) -> float:
        return min(row[key] for row in rows)

    def median(rows: list[dict[str, float]], key: str) -> float:
        values = sorted(row[key] for row in rows)
        return values[len(values) // 2]

    print(f"\ndispatch of a one-job run (best / median of {len(warm)} trials, seconds)")
    print(f"{'path':<44}{'to train()':>14}{'to first step':>16}")
    for label, rows, start in (
        ("warm worker: POST /runs → fork-server child", warm, "POST"),
        ("fresh interpreter (python -m worker.training)", fresh, "exec"),
    ):
        cells = [
            f"{best(rows, k):.2f} / {median(rows, k):.2f}" for k in ("to_train", "to_first_step")
        ]
        print(f"{label:<44}{cells[0]:>14}{cells[1]:>16}   from {start}")
    print(f"POST /runs answered in {median(warm, 'post'):.3f} s (median)")
    ratio = median(fresh, "to_train") / median(warm, "to_train")
    print(f"child reaches train() {ratio:.0f}x sooner than a fresh interpreter; target ≤ 1 s")
    print("first step = data loading, model and Trainer set-up, and one optimiser step")


if __name__ == "__main__":
    main()
