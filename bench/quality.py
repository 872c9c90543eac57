"""Reconstruction quality on the demo study: untrained vs trained, for every dose × view.

    .venv/bin/python bench/quality.py            # all 3 doses × 3 views, ~100 s per job
    .venv/bin/python bench/quality.py --quick    # dose 1e5 only, baseline and dense

Each job's untrained network (same seed, same split) is the baseline the trained one is
measured against. Views whose Phase D data is missing are reported as skipped, with the
reason the study's enumeration gives. The last lines check the training issue's bar: at
dose 1e5 a CPU training of at most 3 minutes lowers the test amplitude MAE by >= 30 % and
brings the phase correlation to >= 0.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from app.study.demo_data import make_demo_data
from app.study.design import StudyDesign
from app.study.jobs import Filters, JobSpec, enumerate_jobs
from worker.training import TrainConfig, train
from worker.training.data import PtychoDataModule
from worker.training.evaluate import evaluate
from worker.training.runner import build_model

SHOWN = (
    "amplitude_mae",
    "phase_mae",
    "phase_correlation",
    "amplitude_ssim",
    "phase_ssim",
    "amplitude_psnr",
    "phase_psnr",
    "amplitude_frc50",
    "phase_frc50",
)
SHORT = {"amplitude": "amp", "phase": "ph", "correlation": "corr"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="demo study root (default: make one in a tmp dir)"
    )
    parser.add_argument("--quick", action="store_true", help="dose 1e5, baseline and dense only")
    parser.add_argument("--doses", type=float, nargs="*", help="doses to run (default: all)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--n-groups", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    return parser.parse_args()


def untrained_metrics(config: TrainConfig) -> dict[str, float]:
    """Metrics of the network as train() initialises it, on the same test split."""
    data = PtychoDataModule(config)
    data.setup()
    torch.manual_seed(config.seed)
    metrics, _ = evaluate(build_model(config, data), data)
    return metrics


def run_job(job: JobSpec, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    config = TrainConfig(
        train_path=job.train_data_path,
        test_path=job.test_data_path,
        out_dir=out / f"dose_{int(job.dose)}" / job.view,
        gridsize=job.gridsize,
        nphotons=job.dose,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        n_groups=args.n_groups,
        accelerator="cpu",
        logger="none",
    )
    before = untrained_metrics(config)
    started = time.perf_counter()
    result = train(config)
    wall_s = time.perf_counter() - started
    return {
        "job": job,
        "before": before,
        "after": result["metrics"],
        "result": result,
        "wall_s": wall_s,
    }


def _name(key: str) -> str:
    return "_".join(SHORT.get(part, part) for part in key.split("_"))


def print_table(rows: list[dict[str, Any]], skipped: list[Any]) -> None:
    header = f"{'dose':>7} {'view':<8} {'gs':>2} {'train_s':>7} {'loss0→loss':>19} " + " ".join(
        f"{_name(k):>15}" for k in SHOWN
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        job, before, after, history = row["job"], row["before"], row["after"], row["result"]
        losses = [h["train_loss"] for h in history["history"]]
        cells = " ".join(f"{before[k]:>7.3f}→{after[k]:<7.3f}" for k in SHOWN)
        print(
            f"{job.dose:>7g} {job.view:<8} {job.gridsize:>2} {row['wall_s']:>7.1f} "
            f"{losses[0]:>9.3f}→{losses[-1]:<9.3f} {cells}"
        )
    for skip in skipped:
        print(f"{skip.dose:>7g} {skip.view:<8}  skipped: {skip.reason}")
    print("cells: untrained→trained; train_s includes evaluation and artifacts")


def check_bar(rows: list[dict[str, Any]]) -> bool:
    ok = True
    for row in rows:
        job = row["job"]
        if job.dose != 1e5:
            continue
        before, after = row["before"], row["after"]
        drop = 1 - after["amplitude_mae"] / before["amplitude_mae"]
        passed = drop >= 0.30 and after["phase_correlation"] >= 0.5 and row["wall_s"] <= 180
        ok &= passed
        verdict = "PASS" if passed else "FAIL"
        print(
            f"dose 1e5 {job.view}: amplitude MAE -{drop:.0%} (need >= 30 %), "
            f"phase correlation {before['phase_correlation']:.2f} → "
            f"{after['phase_correlation']:.2f} (need >= 0.5), "
            f"{row['wall_s']:.0f} s (need <= 180 s): {verdict}"
        )
    return ok


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp) / "demo"
        if not (root / "phase_c").is_dir():
            make_demo_data(root)
        design = StudyDesign()
        doses = [1e5] if args.quick else (args.doses or design.doses)
        views = ["baseline", "dense"] if args.quick else design.views
        design = StudyDesign(doses=doses, views=views)
        plan = enumerate_jobs(
            design=design,
            phase_c_root=root / "phase_c",
            phase_d_root=root / "phase_d",
            artifact_root=Path(tmp) / "runs",
            filters=Filters(),
            strict=False,
        )
        print(
            f"demo study {root}: {len(plan.jobs)} jobs, {len(plan.skips)} skipped views; "
            f"epochs={args.epochs} lr={args.lr:g} batch={args.batch_size} "
            f"n_groups={args.n_groups} threads={torch.get_num_threads()}",
            flush=True,
        )
        rows = []
        for job in plan.jobs:
            rows.append(run_job(job, args, Path(tmp) / "out"))
            print(
                f"  done dose {rows[-1]['job'].dose:g} {job.view} in {rows[-1]['wall_s']:.0f} s",
                flush=True,
            )
        print_table(rows, plan.skips)
        return 0 if check_bar(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
