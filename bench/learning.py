"""Does training learn? Architecture × gridsize × dose × seed on the demo study, default recipe.

    .venv/bin/python bench/learning.py                       # the full grid: 2 × 2 × 2 × 3 runs
    .venv/bin/python bench/learning.py --architectures unet --gridsizes 1 --doses 1e5 \\
        --seeds 1 --epochs 1 --n-groups 64               # one tiny run
    .venv/bin/python bench/learning.py --patch-size 128 --positions 2000 --doses 1e5 \\
        --architectures ptychopinn --seeds 1 --max-minutes 2 --json learning.json

Each run is one `worker.training.train` job with TrainConfig's defaults (lr, epochs, batch,
n_groups) unless a flag overrides them: ptychopinn sees the amplitudes, unet the amplitudes
and their back-projection; gridsize 1 is the baseline view (Phase C data), gridsize 2 the
dense view (Phase D data). Runs train one after another. Per run it prints each epoch's
training and validation loss beside the validation loss of a flat object and of the ground
truth (the loss no honest reconstruction beats), then the test split's phase correlation,
phase MAE and amplitude MAE beside the flat-object and input-only baselines, and the wall time.

A run has "learned" when its test phase MAE is at least 20 % below the flat object's and
its phase correlation is at least 0.5. The summary gives one row per run and, per
(architecture, gridsize, dose), for how many seeds the run learned.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.study.demo_data import make_demo_data
from app.study.design import StudyDesign
from app.study.jobs import Filters, JobSpec, enumerate_jobs
from app.study.overlap import build_overlap_views
from app.study.scan import make_scan, train_mask
from app.study.selection import select_positions
from app.study.simulate import SCAN_STREAM, SimulationConfig, simulate_phase_c
from worker.training import TrainConfig, train

ARCHITECTURES = {"ptychopinn": "amplitudes", "unet": "amplitudes+backprop"}
VIEWS = {1: "baseline", 2: "dense"}
DEFAULT_DOSES = (1e3, 1e5)
DEFAULT_SEEDS = (1, 2, 3)
MAE_MARGIN = 0.20  # the phase MAE must be at least this share below the flat object's
MIN_CORRELATION = 0.5
SIMULATION_SEED = 42
MIN_DENSE_POSITIONS = 16
METRICS = (
    ("phase_correlation", "phase corr"),
    ("phase_mae", "phase MAE"),
    ("amplitude_mae", "amp MAE"),
)


class Deadline:
    """A ProgressReporter that asks training to stop once a run has had its wall-clock budget.

    TrainConfig has no time limit of its own, so the cap goes through the reporter seam the
    worker uses for cancellation; the job then ends with status "stopped" and is still
    evaluated on the test split.
    """

    def __init__(self, minutes: float) -> None:
        self.budget_s = minutes * 60.0
        self.started = time.monotonic()

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        pass

    def should_stop(self) -> bool:
        return time.monotonic() - self.started >= self.budget_s


class _EpochEcho(logging.Handler):
    """Echoes a job's train.log epoch lines as they are written, so long runs show progress."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = time.perf_counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("epoch ", "WARNING")):
            print(f"    {time.perf_counter() - self.started:7.1f} s  {message}", flush=True)


@contextmanager
def echo_epochs(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    # train.log lines are mirrored to this logger (worker.training.callbacks.TrainLog).
    source = logging.getLogger("worker.training.callbacks")
    handler, level = _EpochEcho(), source.level
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(level)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="study root with phase_c/ and phase_d/ (made there if missing)"
    )
    parser.add_argument(
        "--architectures", nargs="+", choices=tuple(ARCHITECTURES), default=list(ARCHITECTURES)
    )
    parser.add_argument(
        "--inputs",
        choices=("amplitudes", "amplitudes+backprop"),
        help="what every network sees (default: ptychopinn the amplitudes, unet both)",
    )
    parser.add_argument("--gridsizes", nargs="+", type=int, choices=(1, 2), default=[1, 2])
    parser.add_argument("--doses", nargs="+", type=float, default=list(DEFAULT_DOSES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--epochs", type=int, help="default: TrainConfig's")
    parser.add_argument("--lr", type=float, help="default: TrainConfig's")
    parser.add_argument("--n-groups", type=int, help="default: TrainConfig's")
    parser.add_argument(
        "--max-minutes", type=float, help="wall-clock cap per training run (then it stops)"
    )
    parser.add_argument("--accelerator", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: 1 on CPU, torch's own with CUDA)"
    )
    parser.add_argument("--json", type=Path, help="write the summary table here as JSON")
    parser.add_argument("--out", type=Path, help="keep the runs' artifacts here")
    parser.add_argument("--quiet", action="store_true", help="no live epoch lines")
    simulation = parser.add_argument_group("data made when --data has none")
    simulation.add_argument("--patch-size", type=int, default=64, help="N (64: the demo study)")
    simulation.add_argument("--positions", type=int, help="scan positions (demo: 1000)")
    simulation.add_argument(
        "--object-size", type=int, help="object side (default: demo's rule, or dense-accepted)"
    )
    args = parser.parse_args(argv)
    if len(set(args.doses)) != len(args.doses):
        parser.error("--doses must not repeat")
    for name in ("epochs", "n_groups", "lr", "max_minutes", "positions", "object_size"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def dense_object_size(patch_size: int, positions: int, seed: int = SIMULATION_SEED) -> int:
    """The smallest object side (steps of 16) whose random scan keeps a dense view per split.

    The demo's own rule is tuned to N = 64; at other N the dense view's spacing is larger,
    so the object is grown until greedy selection, on the positions alone, accepts the dense
    view with at least MIN_DENSE_POSITIONS positions in both splits.
    """
    design = StudyDesign()
    threshold = design.spacing_threshold("dense", patch_size)
    for size in range(patch_size + 32, 16 * patch_size, 16):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SCAN_STREAM,)))
        x, y = make_scan("random", positions, size, patch_size, rng)
        is_train = train_mask(y)
        selections = [
            select_positions(x[s], y[s], threshold, design.min_acceptance)
            for s in (is_train, ~is_train)
        ]
        if all(s.accepted and s.n_accepted >= MIN_DENSE_POSITIONS for s in selections):
            return size
    raise ValueError(f"no object size gives a dense view for N={patch_size}, {positions} positions")


def prepare_data(root: Path, args: argparse.Namespace) -> None:
    if (root / "phase_c").is_dir():
        return
    started = time.perf_counter()
    if args.patch_size == 64:
        make_demo_data(
            root,
            doses=args.doses,
            n_positions=args.positions or 1000,
            object_size=args.object_size,
        )
    else:
        positions = args.positions or 1000
        size = args.object_size or dense_object_size(args.patch_size, positions)
        config = SimulationConfig(
            patch_size=args.patch_size,
            object_size=size,
            n_positions=positions,
            seed=SIMULATION_SEED,
            doses=tuple(args.doses),
        )
        simulate_phase_c(config, root / "phase_c")
        build_overlap_views(root / "phase_c", root / "phase_d", views=["dense"])
    print(f"made study data in {root} in {time.perf_counter() - started:.1f} s", flush=True)


def make_config(
    job: JobSpec, architecture: str, seed: int, args: argparse.Namespace, out: Path
) -> TrainConfig:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("epochs", "lr", "n_groups")
        if getattr(args, name) is not None
    }
    return TrainConfig(
        train_path=job.train_data_path,
        test_path=job.test_data_path,
        out_dir=out / f"dose_{int(job.dose)}" / job.view / architecture / f"seed{seed}",
        gridsize=job.gridsize,
        nphotons=job.dose,
        architecture=architecture,
        inputs=args.inputs or ARCHITECTURES[architecture],
        seed=seed,
        accelerator=args.accelerator,
        # Metric files are not read here; checkpoints are written as train() always does.
        logger="none",
        label=f"{architecture} {job.view} dose {job.dose:g} seed {seed}",
        **overrides,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _fmt(value: Any, width: int = 10, digits: int = 4) -> str:
    number = _number(value)
    return f"{number:>{width}.{digits}g}" if number is not None else f"{'n/a':>{width}}"


def learned(model: dict[str, Any], flat: dict[str, Any]) -> bool:
    mae, flat_mae = _number(model.get("phase_mae")), _number(flat.get("phase_mae"))
    correlation = _number(model.get("phase_correlation"))
    if mae is None or flat_mae is None or correlation is None:
        return False
    return mae <= (1.0 - MAE_MARGIN) * flat_mae and correlation >= MIN_CORRELATION


def summarise(
    job: JobSpec, architecture: str, seed: int, result: dict[str, Any] | None, wall_s: float
) -> dict[str, Any]:
    """One row of the summary; `result` is None when the run failed."""
    row: dict[str, Any] = {
        "architecture": architecture,
        "gridsize": job.gridsize,
        "view": job.view,
        "dose": job.dose,
        "seed": seed,
        "wall_s": round(wall_s, 2),
    }
    if result is None:
        return {**row, "status": "failed", "learned": False}
    baselines = result.get("baselines", {})
    model = result.get("metrics", {})
    flat = baselines.get("flat", {}).get("ours", {})
    inputs = baselines.get("input_only", {}).get("ours", {})
    return {
        **row,
        "status": result.get("status"),
        "epochs_completed": result.get("epochs_completed"),
        "device": result.get("device"),
        "train_loss": _number(result.get("final_loss")),
        "val_loss": _number(result.get("val_loss")),
        "flat_val_loss": _number(result.get("flat_val_loss")),
        "reference_val_loss": _number(result.get("reference_val_loss")),
        **{f"model_{key}": _number(model.get(key)) for key, _ in METRICS},
        **{f"flat_{key}": _number(flat.get(key)) for key, _ in METRICS},
        **{f"input_only_{key}": _number(inputs.get(key)) for key, _ in METRICS},
        "learned": learned(model, flat),
        "history": result.get("history", []),
    }


def print_epochs(result: dict[str, Any]) -> None:
    flat, truth = result.get("flat_val_loss"), result.get("reference_val_loss")
    print(f"  {'epoch':>5} {'train':>10} {'val':>10} {'flat val':>10} {'truth val':>10}")
    for entry in result.get("history", []):
        partial = "" if entry.get("complete", True) else "  (stopped early)"
        print(
            f"  {entry.get('epoch', '?'):>5} {_fmt(entry.get('train_loss'))} "
            f"{_fmt(entry.get('val_loss'))} {_fmt(flat)} {_fmt(truth)}{partial}"
        )
    if "flat_val_loss" not in result:
        print("  (this trainer's result has no flat_val_loss)")


def print_metrics(row: dict[str, Any]) -> None:
    print(f"  {'test':<12}" + "".join(f"{label:>12}" for _, label in METRICS))
    for who in ("model", "flat", "input_only"):
        cells = "".join(_fmt(row.get(f"{who}_{key}"), 12) for key, _ in METRICS)
        print(f"  {who:<12}{cells}")
    verdict = "learned" if row["learned"] else "did not learn"
    print(
        f"  → {verdict} (rule: phase MAE ≤ {1 - MAE_MARGIN:.2f} × flat's and phase corr ≥ "
        f"{MIN_CORRELATION}); {row['status']} after {row.get('epochs_completed')} epochs, "
        f"wall {row['wall_s']:.1f} s on {row.get('device')}"
    )


def run_one(
    job: JobSpec, architecture: str, seed: int, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    config = make_config(job, architecture, seed, args, out)
    reporter = Deadline(args.max_minutes) if args.max_minutes else None
    started = time.perf_counter()
    result: dict[str, Any] | None
    try:
        with echo_epochs(not args.quiet):
            result = train(config, reporter=reporter)
    except Exception:
        # One broken run should not cost the others; it counts as not learned.
        traceback.print_exc()
        result = None
    row = summarise(job, architecture, seed, result, time.perf_counter() - started)
    if result is None:
        print(f"  FAILED after {row['wall_s']:.1f} s")
        return row
    print_epochs(result)
    print_metrics(row)
    return row


SUMMARY = (
    ("arch", "architecture", "<10", None),
    ("gs", "gridsize", ">2", None),
    ("dose", "dose", ">7", "g"),
    ("seed", "seed", ">4", None),
    ("status", "status", "<9", None),
    ("ep", "epochs_completed", ">3", None),
    ("wall_s", "wall_s", ">7", ".1f"),
    ("val", "val_loss", ">9", ".4g"),
    ("flat_val", "flat_val_loss", ">9", ".4g"),
    ("truth_val", "reference_val_loss", ">9", ".4g"),
    ("corr", "model_phase_correlation", ">6", ".3f"),
    ("ph_mae", "model_phase_mae", ">7", ".3f"),
    ("flat", "flat_phase_mae", ">6", ".3f"),
    ("input", "input_only_phase_mae", ">6", ".3f"),
    ("amp_mae", "model_amplitude_mae", ">7", ".3f"),
    ("flat", "flat_amplitude_mae", ">6", ".3f"),
    ("input", "input_only_amplitude_mae", ">6", ".3f"),
    ("learned", "learned", ">7", None),
)


def _cell(value: Any, spec: str, style: str | None) -> str:
    if value is None:
        return format("n/a", spec)
    if isinstance(value, bool):
        return format("yes" if value else "no", spec)
    return format(value, spec + (style or ""))


def print_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    print("\nsummary (phase and amplitude MAE: model, flat object, input-only maps)")
    print(" ".join(format(title, spec) for title, _, spec, _ in SUMMARY))
    for row in rows:
        print(" ".join(_cell(row.get(key), spec, style) for _, key, spec, style in SUMMARY))
    verdicts: list[dict[str, Any]] = []
    groups: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["architecture"], row["gridsize"], row["dose"]), []).append(row)
    print()
    for (architecture, gridsize, dose), members in groups.items():
        count = sum(1 for row in members if row["learned"])
        word = "learned" if count else "NOT learned"
        print(
            f"{architecture} gridsize {gridsize} ({VIEWS[gridsize]}) dose {dose:g}: "
            f"{word} for {count}/{len(members)} seeds"
        )
        verdicts.append(
            {
                "architecture": architecture,
                "gridsize": gridsize,
                "dose": dose,
                "learned_seeds": count,
                "seeds": len(members),
            }
        )
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads
    if threads is None and not torch.cuda.is_available():
        threads = 1  # small jobs run faster on one thread than on a few shared cores
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp) / "study"
        prepare_data(root, args)
        design = StudyDesign(doses=args.doses, views=[VIEWS[g] for g in sorted(args.gridsizes)])
        plan = enumerate_jobs(
            design=design,
            phase_c_root=root / "phase_c",
            phase_d_root=root / "phase_d",
            artifact_root=Path(tmp) / "runs",
            filters=Filters(),
            strict=False,
        )
        for skip in plan.skips:
            print(f"dose {skip.dose:g} {skip.view}: skipped: {skip.reason}")
        total = len(plan.jobs) * len(args.architectures) * len(args.seeds)
        defaults = TrainConfig(Path(), Path(), Path(), 1, 1.0)
        print(
            f"study {root}: {total} runs; epochs={args.epochs or defaults.epochs} "
            f"lr={args.lr or defaults.lr:g} batch={defaults.batch_size} "
            f"n_groups={args.n_groups or defaults.n_groups} "
            f"max_minutes={args.max_minutes or 'none'} threads={torch.get_num_threads()} "
            f"cuda={torch.cuda.is_available()}",
            flush=True,
        )
        out = args.out or Path(tmp) / "out"
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for job in plan.jobs:
            for architecture in args.architectures:
                for seed in args.seeds:
                    print(
                        f"\nrun {len(rows) + 1}/{total}: {architecture} gridsize {job.gridsize} "
                        f"({job.view}) dose {job.dose:g} seed {seed}",
                        flush=True,
                    )
                    rows.append(run_one(job, architecture, seed, args, out))
        verdicts = print_summary(rows)
        print(f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            report = {
                "settings": {
                    key: str(value) if isinstance(value, Path) else value
                    for key, value in vars(args).items()
                },
                "rule": {"phase_mae_below_flat_by": MAE_MARGIN, "min_correlation": MIN_CORRELATION},
                "runs": rows,
                "verdicts": verdicts,
                "skipped": [
                    {"dose": s.dose, "view": s.view, "reason": s.reason} for s in plan.skips
                ],
            }
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
