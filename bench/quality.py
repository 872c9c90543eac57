"""Reconstruction quality on the demo study, per dose × view, for both architectures.

    .venv/bin/python bench/quality.py              # 3 doses, baseline and dense, both networks
    .venv/bin/python bench/quality.py --quick      # dose 1e5 only
    .venv/bin/python bench/quality.py --architectures ptychopinn --epochs 10

For every job it prints both metric blocks, ours (study.md §8: aligned global phase,
absolute amplitude) and PtychoPINN's (eval_reconstruction: plane-removed phase, mean-scaled
amplitude, SSIM on (φ+π)/2π, MS-SSIM, FRC50 as a ring index), for:
- flat: a flat object at the level the test counts imply (no learning at all);
- input_only: the back-projection maps that `inputs="amplitudes+backprop"` feeds the
  network, stitched as they are (no network);
- each architecture after training: ptychopinn (PtychoPINN's network, amplitudes only, as
  the study ran it) and unet (ours, with the back-projection inputs);
and the skill against the flat object ((model − flat) / (perfect − flat): 1 perfect, 0 no
better than flat, negative worse). Views whose Phase D data is missing are reported as
skipped, with the reason the study's enumeration gives. The last lines say, per job,
whether each trained network beats the flat object and the input maps on phase MAE.
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

ARCHITECTURES = {"ptychopinn": "amplitudes", "unet": "amplitudes+backprop"}
OURS = ("amplitude_mae", "phase_mae", "amplitude_ssim", "phase_ssim", "phase_correlation",
        "amplitude_frc50", "phase_frc50")  # fmt: skip
PINN = ("amplitude_mae", "phase_mae", "amplitude_ssim", "phase_ssim", "amplitude_ms_ssim",
        "phase_ms_ssim", "amplitude_frc50", "phase_frc50")  # fmt: skip
SHORT = {"amplitude": "amp", "phase": "ph", "correlation": "corr", "ms": "ms"}
LABEL_WIDTH = 26


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="demo study root (default: make one in a tmp dir)"
    )
    parser.add_argument("--quick", action="store_true", help="dose 1e5 only")
    parser.add_argument("--doses", type=float, nargs="*", help="doses to run (default: all)")
    parser.add_argument("--views", nargs="*", help="views to run (default: all)")
    parser.add_argument(
        "--architectures", nargs="*", choices=tuple(ARCHITECTURES), default=list(ARCHITECTURES)
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-groups", type=int, default=256)
    parser.add_argument("--stitching", choices=("ours", "ptychopinn"), default="ours")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    return parser.parse_args()


def run_job(job: JobSpec, architecture: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    config = TrainConfig(
        train_path=job.train_data_path,
        test_path=job.test_data_path,
        out_dir=out / f"dose_{int(job.dose)}" / job.view / architecture,
        gridsize=job.gridsize,
        nphotons=job.dose,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        n_groups=args.n_groups,
        architecture=architecture,
        inputs=ARCHITECTURES[architecture],
        stitching=args.stitching,
        accelerator="cpu",
        logger="none",
    )
    started = time.perf_counter()
    result = train(config)
    return {"result": result, "wall_s": time.perf_counter() - started}


def _name(key: str) -> str:
    return "_".join(SHORT.get(part, part) for part in key.split("_"))


def _cells(values: dict[str, Any], keys: tuple[str, ...]) -> str:
    def cell(value: Any) -> str:
        return f"{value:>9.3f}" if isinstance(value, int | float) else f"{'n/a':>9}"

    return " ".join(cell(values.get(key)) for key in keys)


def header() -> str:
    ours = " ".join(f"{_name(k):>9}" for k in OURS)
    pinn = " ".join(f"{_name(k):>9}" for k in PINN)
    return f"{'':<{LABEL_WIDTH}} | ours: {ours} | ptychopinn: {pinn}"


def row(label: str, ours: dict[str, Any], pinn: dict[str, Any]) -> str:
    return f"{label:<{LABEL_WIDTH}} | {'':6}{_cells(ours, OURS)} | {'':12}{_cells(pinn, PINN)}"


def print_job(job: JobSpec, runs: dict[str, dict[str, Any]]) -> None:
    first = next(iter(runs.values()))["result"]
    print(f"\ndose {job.dose:g} {job.view} gridsize {job.gridsize}")
    print(header())
    for name in ("flat", "input_only"):
        blocks = first["baselines"][name]
        print(row(name, blocks["ours"], blocks["ptychopinn"]))
    for architecture, run in runs.items():
        result = run["result"]
        losses = [h["train_loss"] for h in result["history"]]
        label = f"{architecture} ({run['wall_s']:.0f} s)"
        print(row(label, result["metrics"], result["metrics_ptychopinn"]))
        skill = result["skill_vs_flat"]
        print(row("  skill vs flat", skill["ours"], skill["ptychopinn"]))
        val, floor = result["val_loss"], result["reference_val_loss"]
        print(f"{'':<{LABEL_WIDTH}} | loss {losses[0]:.4g} → {losses[-1]:.4g}, "
              f"val {val:.4g} (ground truth's {floor:.4g})")  # fmt: skip


def verdicts(rows: list[tuple[JobSpec, dict[str, dict[str, Any]]]]) -> None:
    print("\nphase MAE against the baselines (both conventions):")
    for job, runs in rows:
        for architecture, run in runs.items():
            result = run["result"]
            parts = []
            for convention, block in (("ours", "metrics"), ("ptychopinn", "metrics_ptychopinn")):
                model = result[block]["phase_mae"]
                flat = result["baselines"]["flat"][convention]["phase_mae"]
                inputs = result["baselines"]["input_only"][convention]["phase_mae"]
                parts.append(
                    f"{convention}: {model:.3f} vs flat {flat:.3f} "
                    f"({'beats' if model < flat else 'LOSES TO'} flat), vs input maps "
                    f"{inputs:.3f} ({'beats' if model < inputs else 'LOSES TO'} them)"
                )
            print(f"  dose {job.dose:g} {job.view} {architecture}: " + "; ".join(parts))


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
        design = StudyDesign(doses=doses, views=args.views or design.views)
        plan = enumerate_jobs(
            design=design,
            phase_c_root=root / "phase_c",
            phase_d_root=root / "phase_d",
            artifact_root=Path(tmp) / "runs",
            filters=Filters(),
            strict=False,
        )
        print(
            f"demo study {root}: {len(plan.jobs)} jobs × {len(args.architectures)} "
            f"architectures, {len(plan.skips)} skipped views; epochs={args.epochs} "
            f"lr={args.lr:g} batch={args.batch_size} n_groups={args.n_groups} "
            f"stitching={args.stitching} threads={torch.get_num_threads()}",
            flush=True,
        )
        rows = []
        for job in plan.jobs:
            runs = {}
            for architecture in args.architectures:
                runs[architecture] = run_job(job, architecture, args, Path(tmp) / "out")
                print(f"  done dose {job.dose:g} {job.view} {architecture} in "
                      f"{runs[architecture]['wall_s']:.0f} s", flush=True)  # fmt: skip
            rows.append((job, runs))
        for job, runs in rows:
            print_job(job, runs)
        for skip in plan.skips:
            print(f"\ndose {skip.dose:g} {skip.view}: skipped: {skip.reason}")
        verdicts(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
