"""Training throughput at N = 64, and the cost of Lightning over a bare PyTorch loop.

    .venv/bin/python bench/train_throughput.py [--quick] [--epochs 3] [--threads 0]

For gridsize 1 and 2 the same network (same seed), data loaders, optimiser and epochs (train
plus validation each epoch) run twice in this invocation: once through the Trainer exactly
as train() configures it (CSV logger, checkpoints, epoch history, progress callback) and once
as a plain loop. The ratio Lightning / bare is the overhead; the target is <= 1.10. Both are
run twice, alternating, after a warm-up, and the faster of each counts, to damp noise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch

from app.study.simulate import SimulationConfig, simulate_phase_c
from worker.training import TrainConfig
from worker.training.callbacks import EpochHistory, ReporterCallback, TrainLog
from worker.training.data import PtychoDataModule
from worker.training.runner import build_model, build_trainer, expected_warnings, quiet_lightning

TARGET_RATIO = 1.10


class _NullReporter:
    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def lightning_fit_s(config: TrainConfig, data: PtychoDataModule) -> float:
    """Seconds spent in Trainer.fit, set up as train() does."""
    L.seed_everything(config.seed, verbose=False)
    model = build_model(config, data)
    callbacks = [
        EpochHistory(TrainLog(config.out_dir / "train.log"), config.epochs),
        ReporterCallback(_NullReporter(), config.epochs),
    ]
    with quiet_lightning(), expected_warnings():
        trainer = build_trainer(config, data, callbacks)  # type: ignore[arg-type]
        started = time.perf_counter()
        trainer.fit(model, datamodule=data)
        return time.perf_counter() - started


def bare_loop_s(config: TrainConfig, data: PtychoDataModule) -> float:
    """Seconds for the same epochs as a plain PyTorch loop (train + validation per epoch)."""
    L.seed_everything(config.seed, verbose=False)
    model = build_model(config, data)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    started = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        for diffraction, offsets in data.train_dataloader():
            loss = model.loss(model.predicted_amplitude(model(diffraction), offsets), diffraction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for diffraction, offsets in data.val_dataloader():
                model.predicted_amplitude(model(diffraction), offsets)
    return time.perf_counter() - started


def measure(config: TrainConfig, rounds: int) -> tuple[float, float, int]:
    data = PtychoDataModule(config)
    data.setup()
    bare_loop_s(replace(config, epochs=1), data)  # warm-up: allocator, oneDNN kernels, caches
    lightning_s, bare_s = [], []
    for round_index in range(rounds):
        # A fresh artifact folder per round, as a new job would have; the order alternates so
        # neither side always runs on a warmer machine.
        fresh = replace(config, out_dir=config.out_dir / f"round{round_index}")
        if round_index % 2:
            lightning_s.append(lightning_fit_s(fresh, data))
            bare_s.append(bare_loop_s(fresh, data))
        else:
            bare_s.append(bare_loop_s(fresh, data))
            lightning_s.append(lightning_fit_s(fresh, data))
    patterns = data.train_samples.diffraction.shape[0] * config.gridsize**2
    return min(bare_s), min(lightning_s), patterns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer patterns and one round")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    positions, rounds = (256, 1) if args.quick else (512, 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_phase_c(
            SimulationConfig(patch_size=64, object_size=320, n_positions=positions, doses=(1e5,)),
            root / "data",
        )
        split = root / "data" / "dose_100000"
        print(
            f"N=64, {positions} positions (train half), epochs={args.epochs}, batch 16, "
            f"threads={torch.get_num_threads()}, best of {rounds}"
        )
        print(
            f"{'case':<26} {'patterns':>8} {'bare_s':>8} {'lightning_s':>11} "
            f"{'ratio':>6} {'patterns/s':>10}"
        )
        worst = 0.0
        for gridsize, n_groups in ((1, 512), (2, positions // 4)):
            config = TrainConfig(
                train_path=split / "patched_train.npz",
                test_path=split / "patched_test.npz",
                out_dir=root / f"gs{gridsize}",
                gridsize=gridsize,
                nphotons=1e5,
                epochs=args.epochs,
                n_groups=n_groups,
                accelerator="cpu",
                logger="csv",
            )
            bare_s, lightning_s, patterns = measure(config, rounds)
            ratio = lightning_s / bare_s
            worst = max(worst, ratio)
            rate = patterns * args.epochs / lightning_s
            name = f"gridsize {gridsize}" + (f" ({n_groups} groups)" if gridsize == 2 else "")
            print(
                f"{name:<26} {patterns:>8} {bare_s:>8.2f} {lightning_s:>11.2f} "
                f"{ratio:>6.3f} {rate:>10.1f}"
            )
        verdict = "PASS" if worst <= TARGET_RATIO else "FAIL"
        print(f"worst Lightning/bare ratio {worst:.3f} (target <= {TARGET_RATIO}): {verdict}")
        print("patterns/s counts every diffraction pattern seen in training (4 per group at gs 2)")
        return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
