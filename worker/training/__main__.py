"""`python -m worker.training`: train one job from the command line and write DIR/result.json.

`python -m worker.training predict --bundle B --data F` reconstructs a scan with a trained
bundle instead (worker.training.predict).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from worker.training.config import (
    ACCELERATORS,
    ARCHITECTURES,
    BORDER_PHASES,
    INPUTS,
    KEEP_WEIGHTS,
    LOGGERS,
    LOSSES,
    LR_SCHEDULES,
    STITCHINGS,
    TrainConfig,
)
from worker.training.progress_file import FileReporter

# TrainConfig field → command-line option (its `dest`); the file of --config uses field names.
_OPTIONS = {
    "train_path": "train",
    "test_path": "test",
    "out_dir": "out",
    "gridsize": "gridsize",
    "nphotons": "nphotons",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "n_groups": "n_groups",
    "neighbor_count": "neighbor_count",
    "loss": "loss",
    "accelerator": "accelerator",
    "devices": "devices",
    "deterministic": "deterministic",
    "num_workers": "num_workers",
    "logger": "logger",
    "seed": "seed",
    "log_path": "log_path",
    "architecture": "architecture",
    "inputs": "inputs",
    "probe_trainable": "probe_trainable",
    "gain_trainable": "gain_trainable",
    "val_fraction": "val_fraction",
    "keep_weights": "keep_weights",
    "stitching": "stitching",
    "stitch_crop": "stitch_crop",
    "lr_schedule": "lr_schedule",
    "lr_factor": "lr_factor",
    "lr_patience": "lr_patience",
    "min_lr": "min_lr",
    "early_stop_patience": "early_stop_patience",
    "reseed_on_collapse": "reseed_on_collapse",
    "border_phase": "border_phase",
}
_REQUIRED = ("train", "test", "out", "gridsize", "nphotons")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.training", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON file of TrainConfig fields (what a cluster executor writes); "
        "options given as well override it",
    )
    parser.add_argument("--train", type=Path, help="train split NPZ")
    parser.add_argument("--test", type=Path, help="test split NPZ")
    parser.add_argument("--out", type=Path, help="artifact directory")
    parser.add_argument("--gridsize", type=int, choices=(1, 2))
    parser.add_argument("--nphotons", type=float, help="dose (photons/pattern)")
    defaults = TrainConfig(Path(), Path(), Path(), 1, 1.0)
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", type=float, help=f"default {defaults.lr}")
    parser.add_argument("--n-groups", type=int, help=f"default {defaults.n_groups}")
    parser.add_argument("--neighbor-count", type=int, help=f"default {defaults.neighbor_count}")
    parser.add_argument("--loss", choices=LOSSES, help=f"default {defaults.loss}")
    parser.add_argument(
        "--accelerator", choices=ACCELERATORS, help=f"default {defaults.accelerator}"
    )
    parser.add_argument("--devices", type=int, help=f"default {defaults.devices}")
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        help=f"default {defaults.deterministic}",
    )
    parser.add_argument("--num-workers", type=int, help=f"default {defaults.num_workers}")
    parser.add_argument("--logger", choices=LOGGERS, help=f"default {defaults.logger}")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument("--log-path", type=Path, help="default: OUT/train.log")
    parser.add_argument("--architecture", choices=ARCHITECTURES,
                        help=f"default {defaults.architecture}")  # fmt: skip
    parser.add_argument("--inputs", choices=INPUTS, help=f"default {defaults.inputs}")
    for flag in ("probe-trainable", "gain-trainable"):
        parser.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction,
                            help="default off")  # fmt: skip
    parser.add_argument("--val-fraction", type=float, help=f"default {defaults.val_fraction}")
    parser.add_argument("--keep-weights", choices=KEEP_WEIGHTS,
                        help=f"default {defaults.keep_weights}")  # fmt: skip
    parser.add_argument("--stitching", choices=STITCHINGS, help=f"default {defaults.stitching}")
    parser.add_argument("--stitch-crop", type=int, help=f"default {defaults.stitch_crop}")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                        help=f"default {defaults.lr_schedule}")  # fmt: skip
    parser.add_argument("--lr-factor", type=float, help=f"default {defaults.lr_factor}")
    parser.add_argument("--lr-patience", type=int, help=f"default {defaults.lr_patience}")
    parser.add_argument("--min-lr", type=float, help=f"default {defaults.min_lr}")
    parser.add_argument("--early-stop-patience", type=int,
                        help=f"default {defaults.early_stop_patience} (0: off)")  # fmt: skip
    parser.add_argument("--reseed-on-collapse", type=int,
                        help=f"default {defaults.reseed_on_collapse}")  # fmt: skip
    parser.add_argument("--border-phase", choices=BORDER_PHASES,
                        help=f"default {defaults.border_phase}")  # fmt: skip
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoints/last.ckpt when an earlier attempt left one",
    )
    parser.add_argument("--progress-file", type=Path, help="keep the latest progress here (JSON)")
    parser.add_argument(
        "--stop-file", type=Path, help="stop at the next step once this file exists"
    )
    args = parser.parse_args(argv)
    missing = [f"--{name}" for name in _REQUIRED if getattr(args, name) is None]
    if args.config is None and missing:
        parser.error(f"the following arguments are required without --config: {', '.join(missing)}")
    return args


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The --config file's fields (if any), then the options given on the command line."""
    values: dict[str, Any] = {}
    if args.config is not None:
        values = json.loads(args.config.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"{args.config}: expected a JSON object of TrainConfig fields")
        unknown = sorted(set(values) - set(TrainConfig.field_names()))
        if unknown:
            raise ValueError(f"{args.config}: unknown TrainConfig fields {unknown}")
    for field, dest in _OPTIONS.items():
        if getattr(args, dest) is not None:
            values[field] = getattr(args, dest)
    return TrainConfig(**values)


class ConsoleReporter:
    """A rich progress bar over epochs; Ctrl-C asks training to stop after the current step."""

    def __init__(self, epochs: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.interrupted = False
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),  # stdout carries the result summary
        )
        self.task = self.progress.add_task("epoch", total=epochs)

    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        self.progress.update(self.task, completed=epoch, description=f"step {step} loss {loss:.5g}")

    def should_stop(self) -> bool:
        return self.interrupted

    def finish(self, epochs_completed: int) -> None:
        self.progress.update(self.task, completed=epochs_completed, description="done")

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training job; exit 2 on bad data, with the file and key in the message."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        from worker.training.predict import main as predict_main

        return predict_main(argv[1:])
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from app.study.contract import BAD_INPUT_EXIT, ContractError
    from worker.training.runner import train

    try:
        if args.progress_file is not None or args.stop_file is not None:
            reporter = FileReporter(args.progress_file, args.stop_file)
            reporter.install_signal_handlers()
            result = train(config, reporter=reporter, resume=args.resume)
        elif sys.stderr.isatty():
            console = ConsoleReporter(config.epochs)
            signal.signal(signal.SIGINT, console.interrupt)
            with console.progress:
                result = train(config, reporter=console, resume=args.resume)
                console.finish(result["epochs_completed"])
        else:
            result = train(config, resume=args.resume)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT  # the file is broken: another attempt would fail the same way
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: result.get(k) for k in ("status", "final_loss", "metrics")}, indent=2))
    print(f"result: {config.out_dir / 'result.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
