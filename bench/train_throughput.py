"""Training throughput, ours (Lightning, as train() sets it up) against a bare PyTorch loop.

    .venv/bin/python bench/train_throughput.py                        # N 64, 128 × gridsize 1, 2
    .venv/bin/python bench/train_throughput.py --sizes 64 --gridsizes 1 --steps 5 --warmup 2
    .venv/bin/python bench/train_throughput.py --sizes 128 --gridsizes 2 --epoch  # a whole epoch
    .venv/bin/python bench/train_throughput.py --device cuda --threads 4 --assess

For every (N, gridsize) the same network (same seed), loss, data loader and optimiser run
twice in this invocation: through the Trainer exactly as train() builds it (checkpoints,
epoch history, reference watch, divergence check, progress callback) and as a plain loop.
Step mode (the default) times `--steps` optimiser steps after `--warmup` untimed ones and
reports steps/s, patterns/s (batch × gridsize² diffraction patterns per step) and the ratio
ours / bare in time per step. The bare loop is timed phase by phase with perf_counter (with
a device sync at each boundary on CUDA, plus one unsynchronised pass for its total):
data (loader and copy to the device), forward (the network, with its input maps), physics
(forward model and loss), backward, optimiser step; "Lightning overhead + callbacks" is
ours minus bare per step; evaluation is one validation pass per epoch (also shown spread
over the epoch's steps) and, with `--assess`, the test split's assessment a job ends with
(predict, stitch, score both metric blocks and baselines; the stitching runs on the CPU
and is slow there). `--epoch` instead times one full epoch (training plus validation) each
way after a warm-up epoch.

Ratios are against the baseline measured in the same run; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from app.study.simulate import SimulationConfig, simulate_phase_c
from worker.training import TrainConfig
from worker.training.assess import assess
from worker.training.callbacks import EpochHistory, ReporterCallback, TrainLog
from worker.training.data import PtychoDataModule
from worker.training.divergence import DivergenceCheck
from worker.training.evaluate import reference_loss
from worker.training.folder import JobFolder
from worker.training.module import LitPtychoPINN
from worker.training.runner import build_model, build_trainer, expected_warnings, quiet_lightning
from worker.training.watch import ReferenceWatch

PHASES = ("data", "forward", "physics", "backward", "optimiser")
SHORT = {"data": "data", "forward": "fwd", "physics": "phys", "backward": "bwd", "optimiser": "opt"}
OBJECT_SIZE = {64: 320, 128: 464}  # the demo-sized field at 64, the study's (fly64) at 128
DEFAULT_POSITIONS = 1100  # enough for 512 single patterns in the train half


class _NullReporter:
    def on_progress(self, *, epoch: int, epochs: int, step: int, loss: float) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class StepClock(Callback):
    """Times optimiser steps inside Trainer.fit: from the end of step `warmup` to the last.

    Lightning is stopped right after the timed steps; the device is synchronised only at the
    two ends, so the clock does not slow what it measures.
    """

    def __init__(self, warmup: int, steps: int, sync: Callable[[], None]) -> None:
        self.warmup, self.steps, self.sync = warmup, steps, sync
        self.count = 0
        self.start = self.end = math.nan

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.sync()
            self.start = time.perf_counter()
        elif self.count == self.warmup + self.steps:
            self.sync()
            self.end = time.perf_counter()
            trainer.should_stop = True

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Case:
    """One (N, gridsize) measurement."""

    n: int
    gridsize: int
    batch: int
    train_samples: int
    steps_per_epoch: int
    mode: str  # "steps" or "epoch"
    steps: int  # timed steps (the whole epoch's in epoch mode)
    bare_s: float = math.nan
    ours_s: float = math.nan
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step
    validation_s: float = math.nan  # one pass
    assess_s: float = math.nan

    @property
    def patterns_per_step(self) -> float:
        return self.batch * self.gridsize**2

    @property
    def ratio(self) -> float:
        return self.ours_s / self.bare_s


def _sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def endless(data: PtychoDataModule) -> Iterator[tuple[Tensor, Tensor]]:
    """Training batches, a fresh shuffled epoch whenever one runs out."""
    while True:
        yield from data.train_dataloader()


def fresh_model(config: TrainConfig, data: PtychoDataModule, device: torch.device) -> Any:
    L.seed_everything(config.seed, verbose=False)
    model = build_model(config, data).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model, optimizer


def bare_steps(
    model: LitPtychoPINN,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[Tensor, Tensor]],
    steps: int,
    device: torch.device,
    *,
    phased: bool,
) -> tuple[float, dict[str, float]]:
    """Seconds for `steps` optimiser steps, and (when phased) the seconds of each phase."""
    sync = _sync_for(device) if phased else (lambda: None)
    spent = dict.fromkeys(PHASES, 0.0)
    model.train()
    _sync_for(device)()
    started = time.perf_counter()
    for _ in range(steps):
        mark = time.perf_counter()
        diffraction, offsets = next(batches)
        diffraction, offsets = diffraction.to(device), offsets.to(device)
        sync()
        now = time.perf_counter()
        spent["data"] += now - mark
        mark = now
        patches = model(diffraction)
        sync()
        now = time.perf_counter()
        spent["forward"] += now - mark
        mark = now
        loss = model.loss(model.predicted_amplitude(patches, offsets), diffraction)
        sync()
        now = time.perf_counter()
        spent["physics"] += now - mark
        mark = now
        optimizer.zero_grad()
        loss.backward()
        sync()
        now = time.perf_counter()
        spent["backward"] += now - mark
        mark = now
        optimizer.step()
        sync()
        spent["optimiser"] += time.perf_counter() - mark
    _sync_for(device)()
    return time.perf_counter() - started, spent


@torch.no_grad()
def validation_pass(model: LitPtychoPINN, data: PtychoDataModule, device: torch.device) -> float:
    """Seconds for one pass over the validation loader, loss included, as an epoch ends."""
    model.eval()
    started = time.perf_counter()
    for diffraction, offsets in data.val_dataloader():
        diffraction, offsets = diffraction.to(device), offsets.to(device)
        float(model.loss(model.predicted_amplitude(model(diffraction), offsets), diffraction))
    _sync_for(device)()
    model.train()
    return time.perf_counter() - started


def train_callbacks(config: TrainConfig, data: PtychoDataModule, model: Any) -> list[Callback]:
    """The callbacks train() adds to every job, besides the checkpoints build_trainer adds."""
    log = TrainLog(config.out_dir / "train.log")
    return [
        EpochHistory(log, config.epochs),
        ReferenceWatch(log, reference_loss(model, data, "val")),
        DivergenceCheck(),
        ReporterCallback(_NullReporter(), config.epochs),
    ]


def ours_steps(
    config: TrainConfig, data: PtychoDataModule, warmup: int, steps: int, device: torch.device
) -> float:
    """Seconds for `steps` optimiser steps through Trainer.fit, after `warmup` steps."""
    L.seed_everything(config.seed, verbose=False)
    model = build_model(config, data)
    clock = StepClock(warmup, steps, _sync_for(device))
    with quiet_lightning(), expected_warnings(), JobFolder.for_job(config.out_dir) as folder:
        callbacks = [*train_callbacks(config, data, model), clock]
        trainer = build_trainer(config, data, callbacks, folder=folder)
        trainer.fit(model, datamodule=data)
    if math.isnan(clock.seconds):
        raise RuntimeError(f"Trainer.fit stopped after {clock.count} of {warmup + steps} steps")
    return clock.seconds


def ours_epoch(config: TrainConfig, data: PtychoDataModule) -> float:
    """Seconds in Trainer.fit for the config's epochs, set up as train() does."""
    L.seed_everything(config.seed, verbose=False)
    model = build_model(config, data)
    with quiet_lightning(), expected_warnings(), JobFolder.for_job(config.out_dir) as folder:
        trainer = build_trainer(config, data, train_callbacks(config, data, model), folder=folder)
        started = time.perf_counter()
        trainer.fit(model, datamodule=data)
        return time.perf_counter() - started


def accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def bare_round(
    config: TrainConfig, data: PtychoDataModule, case: Case, warmup: int, device: torch.device
) -> tuple[float, dict[str, float], float]:
    """(seconds per step, seconds per step of each phase, one validation pass) of a fresh loop."""
    model, optimizer = fresh_model(config, data, device)
    batches = endless(data)
    bare_steps(model, optimizer, batches, warmup, device, phased=False)
    phased_s, spent = bare_steps(model, optimizer, batches, case.steps, device, phased=True)
    total_s = phased_s  # on the CPU nothing is synchronised: the phased pass is the plain one
    if device.type == "cuda":
        total_s, _ = bare_steps(model, optimizer, batches, case.steps, device, phased=False)
    phases = {name: value / case.steps for name, value in spent.items()}
    return total_s / case.steps, phases, validation_pass(model, data, device)


def measure_steps(
    config: TrainConfig,
    data: PtychoDataModule,
    case: Case,
    warmup: int,
    device: torch.device,
    rounds: int,
) -> None:
    if case.steps_per_epoch < warmup + case.steps:
        raise SystemExit(
            f"N {case.n} gridsize {case.gridsize}: an epoch has {case.steps_per_epoch} steps, "
            f"fewer than {warmup} + {case.steps}; raise --n-groups or lower --steps"
        )
    bare: list[tuple[float, dict[str, float], float]] = []
    ours: list[float] = []
    for index in range(rounds):
        # A new artifact folder per round, as a new job has; the order alternates so that
        # neither side always runs on the warmer (or quieter) machine.
        fresh = replace(config, out_dir=config.out_dir / f"round{index}")
        if index % 2:
            ours.append(ours_steps(fresh, data, warmup, case.steps, device) / case.steps)
        bare.append(bare_round(config, data, case, warmup, device))
        if not index % 2:
            ours.append(ours_steps(fresh, data, warmup, case.steps, device) / case.steps)
    case.bare_s, case.phases, case.validation_s = min(bare, key=lambda entry: entry[0])
    case.ours_s = min(ours)


def measure_epoch(
    config: TrainConfig, data: PtychoDataModule, case: Case, device: torch.device
) -> None:
    model, optimizer = fresh_model(config, data, device)
    batches = endless(data)
    bare_steps(model, optimizer, batches, case.steps, device, phased=False)  # a warm-up epoch
    validation_pass(model, data, device)
    train_s, spent = bare_steps(model, optimizer, batches, case.steps, device, phased=True)
    case.phases = {name: value / case.steps for name, value in spent.items()}
    case.validation_s = validation_pass(model, data, device)
    case.bare_s = (train_s + case.validation_s) / case.steps
    case.ours_s = ours_epoch(replace(config, epochs=1), data) / case.steps


def measure_assess(config: TrainConfig, data: PtychoDataModule, device: torch.device) -> float:
    model, _ = fresh_model(config, data, device)
    started = time.perf_counter()
    assess(model, data, config.stitching, config.stitch_crop)
    return time.perf_counter() - started


def print_case(case: Case, device: torch.device) -> None:
    ours_rate, bare_rate = 1.0 / case.ours_s, 1.0 / case.bare_s
    timed = (
        f"one epoch ({case.steps} steps + validation) timed each way"
        if case.mode == "epoch"
        else f"{case.steps} timed optimiser steps"
    )
    print(
        f"\nN {case.n}, gridsize {case.gridsize}: {case.train_samples} train samples, "
        f"{case.steps_per_epoch} steps/epoch, batch {case.batch} "
        f"({case.patterns_per_step:g} patterns/step); {timed}"
    )
    print(f"  {'':<34}{'steps/s':>9}{'patterns/s':>12}{'ms/step':>9}")
    for name, seconds, rate in (
        ("bare PyTorch loop", case.bare_s, bare_rate),
        ("ours (Lightning, as train())", case.ours_s, ours_rate),
    ):
        print(
            f"  {name:<34}{rate:>9.2f}{rate * case.patterns_per_step:>12.1f}{seconds * 1e3:>9.1f}"
        )
    print(f"  ratio ours/bare (time per step): {case.ratio:.3f}")
    sync = " (device synced at each boundary)" if device.type == "cuda" else ""
    print(f"  where a bare training step's time goes{sync}:")
    total = sum(case.phases.values())
    for name in PHASES:
        value = case.phases[name]
        print(f"    {name:<32}{value * 1e3:>9.2f} ms {value / total:>7.1%}")
    print(f"    {'= phased bare step':<32}{total * 1e3:>9.2f} ms")
    overhead = case.ours_s - case.bare_s
    print(
        f"    {'Lightning overhead + callbacks':<32}{overhead * 1e3:>9.2f} ms "
        f"{overhead / case.bare_s:>+7.1%} of a bare step"
    )
    per_step = case.validation_s / case.steps_per_epoch
    print(
        f"    {'evaluation: validation pass':<32}{case.validation_s * 1e3:>9.1f} ms per epoch "
        f"(= {per_step * 1e3:.2f} ms per training step, "
        f"{per_step / total:.1%} of a phased step)"
    )
    if not math.isnan(case.assess_s):
        print(f"    {'evaluation: test assessment':<32}{case.assess_s:>9.2f} s once per job")


def print_table(cases: list[Case]) -> None:
    print("\nsummary (steps/s and patterns/s through ours; shares of a phased bare step)")
    head = (
        f"{'case':<9}{'mode':>6}{'ours st/s':>10}{'bare st/s':>10}{'ratio':>7}"
        f"{'ours pat/s':>11}" + "".join(f"{SHORT[name]:>7}" for name in PHASES) + f"{'val/st':>8}"
    )
    print(head + f"{'assess_s':>9}")
    for case in cases:
        total = sum(case.phases.values())
        shares = "".join(f"{case.phases[name] / total:>7.1%}" for name in PHASES)
        val = case.validation_s / case.steps_per_epoch / total
        assess_s = f"{case.assess_s:>9.2f}" if not math.isnan(case.assess_s) else f"{'-':>9}"
        print(
            f"{f'N{case.n} gs{case.gridsize}':<9}{case.mode:>6}{1 / case.ours_s:>10.2f}"
            f"{1 / case.bare_s:>10.2f}{case.ratio:>7.3f}"
            f"{case.patterns_per_step / case.ours_s:>11.1f}{shares}{val:>8.1%}{assess_s}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="N")
    parser.add_argument("--gridsizes", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-groups", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--epoch", action="store_true", help="time one whole epoch instead")
    parser.add_argument(
        "--rounds", type=int, default=1, help="step mode: rounds per side, fastest counts"
    )
    parser.add_argument("--positions", type=int, default=DEFAULT_POSITIONS)
    parser.add_argument("--object-size", type=int, help="default: 320 at N 64, 464 at N 128")
    parser.add_argument("--architecture", choices=("ptychopinn", "unet"), default="ptychopinn")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--assess", action="store_true", help="also time the test assessment (slow on CPU)"
    )
    args = parser.parse_args()
    if min(args.steps, args.warmup, args.batch_size, args.n_groups, args.rounds) < 1:
        parser.error("--steps, --warmup, --batch-size, --n-groups, --rounds must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    # train() runs deterministic; the bare loop gets the same process-wide flags so that the
    # two sides run the same kernels (the Trainer would otherwise leave them switched on
    # for whichever side ran after it).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    print(
        f"device {device}{f' ({torch.cuda.get_device_name(device)})' if use_cuda else ''}, "
        f"threads {torch.get_num_threads()}, architecture {args.architecture}, batch "
        f"{args.batch_size}, n_groups {args.n_groups}, "
        + (
            "one epoch each way"
            if args.epoch
            else f"{args.steps} steps after {args.warmup}, fastest of {args.rounds} round(s)"
        ),
        flush=True,
    )
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in args.sizes:
            size = args.object_size or OBJECT_SIZE.get(n, 4 * n)
            started = time.perf_counter()
            simulate_phase_c(
                SimulationConfig(
                    patch_size=n, object_size=size, n_positions=args.positions, doses=(1e5,)
                ),
                root / f"N{n}",
            )
            split = root / f"N{n}" / "dose_100000"
            print(
                f"simulated N {n}: {args.positions} positions on a {size}² object in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            for gridsize in args.gridsizes:
                config = TrainConfig(
                    train_path=split / "patched_train.npz",
                    test_path=split / "patched_test.npz",
                    out_dir=root / f"N{n}_gs{gridsize}",
                    gridsize=gridsize,
                    nphotons=1e5,
                    epochs=1 if args.epoch else 1000,
                    batch_size=args.batch_size,
                    n_groups=args.n_groups,
                    architecture=args.architecture,
                    inputs="amplitudes"
                    if args.architecture == "ptychopinn"
                    else "amplitudes+backprop",
                    accelerator=accelerator(device),
                    logger="csv",
                )
                data = PtychoDataModule(config)
                data.setup()
                per_epoch = math.ceil(data.train_samples.size / args.batch_size)
                case = Case(
                    n=n,
                    gridsize=gridsize,
                    batch=args.batch_size,
                    train_samples=data.train_samples.size,
                    steps_per_epoch=per_epoch,
                    mode="epoch" if args.epoch else "steps",
                    steps=per_epoch if args.epoch else args.steps,
                )
                if args.epoch:
                    measure_epoch(config, data, case, device)
                else:
                    measure_steps(config, data, case, args.warmup, device, args.rounds)
                if args.assess:
                    case.assess_s = measure_assess(config, data, device)
                print_case(case, device)
                cases.append(case)
    print_table(cases)
    print(
        "patterns/s counts every diffraction pattern a step trains on (4 per group at "
        "gridsize 2); ratio = ours / bare in time per step, both measured in this run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
