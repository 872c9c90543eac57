"""`python -m worker.reconstruction`: reconstruct one split with pty-chi; write DIR/result.json."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.options import ENGINES
from worker.reconstruction.config import NOISE_MODELS, ReconstructConfig
from worker.training.config import ACCELERATORS
from worker.training.progress_file import FileReporter

# ReconstructConfig field → command-line option (its `dest`); the file of --config uses fields.
_OPTIONS = {
    "input_npz": "input",
    "out_dir": "out",
    "engine": "engine",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "noise_model": "noise_model",
    "probe_trainable": "probe_trainable",
    "nphotons": "nphotons",
    "seed": "seed",
    "accelerator": "accelerator",
    "threads": "threads",
    "chunk_epochs": "chunk_epochs",
    "log_path": "log_path",
    "label": "label",
}
_REQUIRED = ("input", "out")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.reconstruction", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON file of ReconstructConfig fields; options given as well override it",
    )
    parser.add_argument("--input", type=Path, help="split NPZ (or CXI) to reconstruct")
    parser.add_argument("--out", type=Path, help="artifact directory")
    defaults = ReconstructConfig(Path(), Path())
    parser.add_argument("--engine", choices=ENGINES, help=f"default {defaults.engine}")
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument(
        "--noise-model", choices=NOISE_MODELS, help=f"LSQML's; default {defaults.noise_model}"
    )
    parser.add_argument(
        "--probe-trainable",
        action=argparse.BooleanOptionalAction,
        help="refine the probe too; default off",
    )
    parser.add_argument(
        "--nphotons", type=float, help="dose; needed only when the file records no intensity scale"
    )
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument(
        "--accelerator", choices=ACCELERATORS, help=f"default {defaults.accelerator}"
    )
    parser.add_argument("--threads", type=int, help="torch threads; default 1 on the CPU")
    parser.add_argument(
        "--chunk-epochs",
        type=int,
        help=f"epochs between progress reports; default {defaults.chunk_epochs}",
    )
    parser.add_argument("--log-path", type=Path, help="default: OUT/train.log")
    parser.add_argument("--label", help="who the job is, for the figure's title")
    parser.add_argument("--progress-file", type=Path, help="keep the latest progress here (JSON)")
    parser.add_argument(
        "--stop-file", type=Path, help="stop after the current chunk once this file exists"
    )
    args = parser.parse_args(argv)
    missing = [f"--{name}" for name in _REQUIRED if getattr(args, name) is None]
    if args.config is None and missing:
        parser.error(f"the following arguments are required without --config: {', '.join(missing)}")
    return args


def config_from_args(args: argparse.Namespace) -> ReconstructConfig:
    """The --config file's fields (if any), then the options given on the command line."""
    values: dict[str, Any] = {}
    if args.config is not None:
        values = json.loads(args.config.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"{args.config}: expected a JSON object of ReconstructConfig fields")
        unknown = sorted(set(values) - set(ReconstructConfig.field_names()))
        if unknown:
            raise ValueError(f"{args.config}: unknown ReconstructConfig fields {unknown}")
    for field, dest in _OPTIONS.items():
        if getattr(args, dest) is not None:
            values[field] = getattr(args, dest)
    return ReconstructConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one reconstruction; exit 2 on bad options or data, with the file and key named."""
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from app.study.contract import BAD_INPUT_EXIT, ContractError
    from worker.reconstruction.runner import ReconstructionDiverged, reconstruct

    reporter = FileReporter(args.progress_file, args.stop_file)
    # SIGTERM (scancel, preemption) and Ctrl-C stop after the current chunk.
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    for number in previous:
        signal.signal(number, reporter.interrupt)
    try:
        result = reconstruct(config, reporter=reporter)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT  # the file is broken: another attempt would fail the same way
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ReconstructionDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    shown = ("status", "algorithm", "epochs_completed", "final_loss", "metrics")
    print(json.dumps({k: result.get(k) for k in shown}, indent=2))
    print(f"result: {config.out_dir / 'result.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
