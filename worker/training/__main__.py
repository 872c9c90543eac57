"""`python -m worker.training`: train one job from the command line and write DIR/result.json."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from worker.training.config import ACCELERATORS, LOGGERS, LOSSES, TrainConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.training", description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="train split NPZ")
    parser.add_argument("--test", type=Path, required=True, help="test split NPZ")
    parser.add_argument("--out", type=Path, required=True, help="artifact directory")
    parser.add_argument("--gridsize", type=int, choices=(1, 2), required=True)
    parser.add_argument("--nphotons", type=float, required=True, help="dose (photons/pattern)")
    defaults = TrainConfig(Path(), Path(), Path(), 1, 1.0)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--n-groups", type=int, default=defaults.n_groups)
    parser.add_argument("--neighbor-count", type=int, default=defaults.neighbor_count)
    parser.add_argument("--loss", choices=LOSSES, default=defaults.loss)
    parser.add_argument("--accelerator", choices=ACCELERATORS, default=defaults.accelerator)
    parser.add_argument("--devices", type=int, default=defaults.devices)
    parser.add_argument(
        "--deterministic", action=argparse.BooleanOptionalAction, default=defaults.deterministic
    )
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers)
    parser.add_argument("--logger", choices=LOGGERS, default=defaults.logger)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--log-path", type=Path, default=None, help="default: OUT/train.log")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        train_path=args.train,
        test_path=args.test,
        out_dir=args.out,
        gridsize=args.gridsize,
        nphotons=args.nphotons,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_groups=args.n_groups,
        neighbor_count=args.neighbor_count,
        loss=args.loss,
        accelerator=args.accelerator,
        devices=args.devices,
        deterministic=args.deterministic,
        num_workers=args.num_workers,
        logger=args.logger,
        seed=args.seed,
        log_path=args.log_path,
    )


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
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from app.study.contract import ContractError
    from worker.training.runner import train

    reporter = ConsoleReporter(config.epochs) if sys.stderr.isatty() else None
    try:
        if reporter is None:
            result = train(config)
        else:
            signal.signal(signal.SIGINT, reporter.interrupt)
            with reporter.progress:
                result = train(config, reporter=reporter)
                reporter.finish(result["epochs_completed"])
    except (ContractError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("status", "final_loss", "metrics")}, indent=2))
    print(f"result: {config.out_dir / 'result.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
