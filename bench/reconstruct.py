"""One pty-chi LSQML job through the service against a bare pty-chi script, same data and epochs.

    .venv/bin/python bench/reconstruct.py                  # demo dose-1e5 test split, 100 epochs
    .venv/bin/python bench/reconstruct.py --epochs 20 --trials 1 --threads 1   # quick

A real API (`ptychojobs serve`) and a real worker (`python -m worker`, the local executor,
pty-chi imported by its fork server) run on a temporary SQLite file. One short reconstruction
warms the worker first; then each trial runs, one after the other on the same split:
- service: `POST /runs` with `reconstruction: {engines: [lsqml], epochs, splits: [test]}` and
  `filters: {kind: reconstruct, view: baseline}`, timed from the POST until the run reads
  succeeded (polled every 50 ms); the job also scores, writes the npz, the product file and
  the figure, as every job does;
- bare: `bench/reconstruct_bare.py`'s plain pty-chi script (numpy and ptychi only) in a new
  interpreter, timed from its start to its exit (what `time python script.py` reports), and
  its build-and-run part alone.

Printed per trial and as medians: both wall times and service / bare against the whole
script and against its build-and-run part. Then the per-epoch cost on the CPU of the bare
script with each `--threads` count and of the service's job (one torch thread, the worker's
default). Ratios are against the baseline run in the same invocation; nothing here asserts
a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, start_worker, stop_process
from app.study.demo_data import make_demo_data
from bench.dispatch import _wait_for_line  # the worker log's "started": its fork server is warm

BARE = REPO / "bench" / "reconstruct_bare.py"
DOSE = 1e5
BATCH_SIZE = 96  # LSQML's default batch (app.options.ENGINE_BATCH_SIZE), both sides
WARM_UP_EPOCHS = 2


def run_body(epochs: int) -> dict[str, Any]:
    """A run of one LSQML job on the baseline view's test split at the benchmark's dose."""
    return {
        "phase_c_root": "study/phase_c",
        "phase_d_root": "study/phase_d",
        "design": {"doses": [DOSE]},
        "reconstruction": {
            "engines": ["lsqml"],
            "epochs": epochs,
            "splits": ["test"],
            "batch_size": BATCH_SIZE,
        },
        "filters": {"kind": "reconstruct", "view": "baseline"},
        "execution": {"accelerator": "cpu", "logger": "none"},
    }


def service_trial(client: PtychoClient, epochs: int) -> dict[str, Any]:
    """Submit the run, wait until it reads succeeded; the wall time and the job's result."""
    posted = time.perf_counter()
    run = client.submit_run(run_body(epochs))
    finished = client.wait_for_run(run["id"], timeout_s=3600, poll_s=0.05)
    wall = time.perf_counter() - posted
    if finished["status"] != "succeeded":
        raise SystemExit(f"run {run['id']} ended {finished['status']}: {client.jobs(run['id'])}")
    [job] = client.jobs(run["id"])
    result: dict[str, Any] = job["result"]
    return {
        "wall_s": wall,
        "engine_s": float(result["engine_s"]),
        "epoch_s": float(result["epoch_s"]),
        "phase_corr": float(result["metrics"]["phase_correlation"]),
        "input": job["test_data_path"],
    }


def bare_trial(path: Path, epochs: int, threads: int) -> dict[str, float]:
    """The bare script in a new interpreter: its whole wall time and its timed part."""
    argv = [sys.executable, str(BARE), "--child", "bare", "--child-threads", str(threads)]
    argv += ["--input", str(path), "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the bare script failed:\n{done.stderr[-3000:]}")
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, "wall_s": wall, "epoch_s": report["run_s"] / epochs}


def measure(root: Path, args: argparse.Namespace) -> None:
    make_demo_data(root / "study", doses=(DOSE,))
    port = free_port()
    env = service_env(
        data_root=root,
        database_url=f"sqlite:///{root / 'ptychojobs.db'}",
        poll_interval_s="0.05",
        heartbeat_s="1",
        log_level="INFO",
    )
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    api_log, worker_log = root / "api.log", root / "worker.log"
    with api_log.open("wb") as api_out, worker_log.open("wb") as worker_out:
        api = start_api(host="127.0.0.1", port=port, env=env, output=api_out)
        client = PtychoClient(f"http://127.0.0.1:{port}")
        worker = None
        try:
            client.wait_until_healthy(timeout_s=120)
            worker = start_worker(env=env, output=worker_out)
            _wait_for_line(worker_log, "started")  # the fork server has imported pty-chi
            warm = service_trial(client, WARM_UP_EPOCHS)
            path = Path(warm["input"])
            print(
                f"input {path.relative_to(root)} (demo, dose {DOSE:g}), {args.epochs} epochs, "
                f"batch {BATCH_SIZE}, CPU, load average {os.getloadavg()[0]:.2f}; worker warm "
                f"(a {WARM_UP_EPOCHS}-epoch job took {warm['wall_s']:.1f} s)"
            )
            trials = []
            for trial in range(1, args.trials + 1):
                service = service_trial(client, args.epochs)
                bare = bare_trial(path, args.epochs, threads=1)
                trials.append((service, bare))
                print(
                    f"trial {trial}: service {service['wall_s']:.2f} s (engine "
                    f"{service['engine_s']:.2f} s, phase corr {service['phase_corr']:.3f}) | "
                    f"bare script {bare['wall_s']:.2f} s (build and run "
                    f"{bare['engine_s']:.2f} s) | service / bare: script "
                    f"{service['wall_s'] / bare['wall_s']:.3f}, build and run "
                    f"{service['wall_s'] / bare['engine_s']:.3f}"
                )
            print_medians(trials)
            print_epoch_costs(path, args, [service for service, _ in trials])
        finally:
            client.close()
            for process in (worker, api):
                if process is not None:
                    stop_process(process, grace_s=30)


def print_medians(trials: list[tuple[dict[str, Any], dict[str, float]]]) -> None:
    service = statistics.median(s["wall_s"] for s, _ in trials)
    script = statistics.median(b["wall_s"] for _, b in trials)
    engine = statistics.median(b["engine_s"] for _, b in trials)
    print(
        f"median of {len(trials)}: service {service:.2f} s, bare script {script:.2f} s "
        f"(build and run {engine:.2f} s); service / bare script {service / script:.3f}, "
        f"service / bare build and run {service / engine:.3f}"
    )


def print_epoch_costs(path: Path, args: argparse.Namespace, services: list[dict[str, Any]]) -> None:
    ours = statistics.median(s["epoch_s"] for s in services)
    print(f"per epoch on the CPU: service job (1 thread) {ours:.3f} s", end="")
    baseline = None
    for threads in args.threads:
        bare = bare_trial(path, args.epochs, threads)
        baseline = baseline or bare["epoch_s"]
        print(
            f"; bare {threads} thread(s) {bare['epoch_s']:.3f} s "
            f"({bare['epoch_s'] / baseline:.2f}x the first)",
            end="",
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="Phase F's default: 100")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="thread counts for the epoch cost"
    )
    args = parser.parse_args()
    if args.epochs < 1 or args.trials < 1 or min(args.threads) < 1:
        parser.error("--epochs, --trials and --threads must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(tmp), args)


if __name__ == "__main__":
    main()
