"""Study data commands: `validate`, `simulate`, `overlap`, `demo-data`."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.study.blocks import ProgressCallback
from app.study.contract import ContractError, load_split
from app.study.demo_data import make_demo_data
from app.study.overlap import OverlapInputError, build_overlap_views
from app.study.selection import MinAcceptance
from app.study.simulate import PRESETS, simulate_phase_c

console = Console(stderr=True)


@contextmanager
def _progress() -> Iterator[ProgressCallback]:
    """A rich progress display fed by (stage, done, total) callbacks."""
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()  # stages may report from writer threads
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:

        def report(stage: str, done: int, total: int) -> None:
            with lock:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

        yield report


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _parse_doses(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        doses = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from exc
    if not doses or any(not math.isfinite(d) or d <= 0 for d in doses):
        raise typer.BadParameter(f"doses must be positive and finite, got {text!r}")
    return doses


def _parse_min_acceptance(text: str) -> MinAcceptance:
    if text == "geometry":
        return "geometry"
    try:
        value = float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"expected a rate in [0, 1] or 'geometry', got {text!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise typer.BadParameter(f"expected a rate in [0, 1] or 'geometry', got {text!r}")
    return value


def validate(
    files: list[Path] = typer.Argument(..., help="Split NPZ files to check"),
) -> None:
    """Check split NPZ files against the study's data contract; exit 1 if any fails."""
    failed = 0
    for path in files:
        try:
            data = load_split(path)
        except (ContractError, FileNotFoundError) as exc:
            failed += 1
            typer.echo(f"FAIL {exc}")
            continue
        scale = data.intensity_scale
        typer.echo(
            f"OK   {path}: n={data.n} N={data.N} object={data.obj.shape} "
            f"Y={'yes' if data.Y is not None else 'no'} "
            f"intensity_scale={'unknown' if scale is None else f'{scale:.6g}'}"
        )
    if failed:
        raise typer.Exit(code=1)


def simulate(
    out: Path = typer.Option(..., help="Phase C root to write"),
    preset: str = typer.Option("demo", help="demo (N 64, 1000 positions) or fly64 (N 128)"),
    doses: str | None = typer.Option(None, help="Comma-separated doses, e.g. 1e3,1e4,1e5"),
    n_positions: int | None = typer.Option(None, min=2, help="Scan positions"),
    patch_size: int | None = typer.Option(None, help="N: diffraction pattern side, 64 or 128"),
    object_size: int | None = typer.Option(None, help="Object side in pixels"),
    scan: str | None = typer.Option(None, help="random, raster or jittered"),
    seed: int | None = typer.Option(None, min=0, help="Simulation seed"),
    probe: Path | None = typer.Option(None, help="NPZ with the probeGuess to use"),
    patches: bool = typer.Option(True, help="Write the ground-truth patches Y"),
) -> None:
    """Simulate Phase C datasets (one per dose) with Poisson noise."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}: expected {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {
        "doses": _parse_doses(doses),
        "n_positions": n_positions,
        "patch_size": patch_size,
        "object_size": object_size,
        "scan": scan,
        "seed": seed,
        "probe_path": probe,
    }
    chosen = {key: value for key, value in overrides.items() if value is not None}
    if "doses" in chosen:
        chosen["doses"] = tuple(chosen["doses"])
    try:
        config = dataclasses.replace(PRESETS[preset], write_patches=patches, **chosen)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    started = time.perf_counter()
    try:
        with _progress() as report:
            result = simulate_phase_c(config, out, progress=report)
    except (ContractError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    for entry in result.datasets:
        typer.echo(
            f"dose {entry['dose']:g}: {entry['n_train']} train + {entry['n_test']} test, "
            f"intensity_scale {entry['intensity_scale']:.6g}, "
            f"mean counts {entry['mean_counts']:.1f}"
        )
    typer.echo(f"wrote {result.manifest_path} in {time.perf_counter() - started:.1f} s")


def overlap(
    phase_c_root: Path = typer.Option(..., help="Phase C root (dose_<int>/patched_*.npz)"),
    out: Path = typer.Option(..., help="Phase D root to write"),
    doses: str | None = typer.Option(None, help="Comma-separated doses (default: all found)"),
    views: str = typer.Option("dense,sparse", help="Comma-separated overlap views"),
    min_acceptance: str = typer.Option("0.10", help="Minimum acceptance rate, or 'geometry'"),
) -> None:
    """Build Phase D dense/sparse views; rejected views are recorded, not fatal."""
    mode = _parse_min_acceptance(min_acceptance)
    chosen_views = [v.strip() for v in views.split(",") if v.strip()]
    try:
        with _progress() as report:
            result = build_overlap_views(
                phase_c_root, out, doses=_parse_doses(doses), views=chosen_views,
                min_acceptance=mode, progress=report,
            )  # fmt: skip
    except (OverlapInputError, ContractError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    table = Table("dose", "view", "split", "status", "strategy", "rate", "minimum", "kept")
    for r in result.records:
        table.add_row(
            f"{r['dose']:g}", r["view"], r["split"], r["status"], r["strategy"] or "-",
            f"{r['acceptance_rate']:.2%}", f"{r['min_acceptance']:.2%}",
            f"{r['n_accepted']}/{r['n_positions']}",
        )  # fmt: skip
    Console().print(table)
    written = result.accepted_views()
    typer.echo(f"{len(written)} views written; manifest {result.manifest_path}")


def demo_data(
    out: Path = typer.Option(..., help="Directory for phase_c/ and phase_d/"),
    n_positions: int = typer.Option(1000, min=2, help="Scan positions (both splits)"),
    object_size: int | None = typer.Option(
        None, help="Object side in pixels (default: 464, smaller for fewer positions)"
    ),
) -> None:
    """Write a small demo study (N 64, three doses): dense views kept, sparse rejected."""
    try:
        with _progress() as report:
            phase_c, phase_d = make_demo_data(
                out, n_positions=n_positions, object_size=object_size, progress=report
            )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Phase C: {phase_c}\nPhase D: {phase_d}")


def register(cli: typer.Typer) -> None:
    cli.command()(validate)
    cli.command()(simulate)
    cli.command()(overlap)
    cli.command(name="demo-data")(demo_data)
