"""Service commands: `migrate`, `serve`, `submit`, `status` and `demo`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlmodel import Session

from app import auth
from app.cli.client import ApiError
from app.cli.connect import API_URL_HELP, api, err_console, fail
from app.cli.processes import start_worker, stop_process
from app.cli.tables import progress_table, skips_table
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.logging import configure_logging, uvicorn_log_config
from app.migrate import upgrade_head

console = Console()


def migrate() -> None:
    """Bring the configured database to the newest schema (what `serve` does on start)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade_head(engine)
    finally:
        engine.dispose()
    console.print(f"database at the newest schema: {engine.url.render_as_string()}")


def serve(
    host: str | None = typer.Option(None, help="Bind address (default: settings.host)"),
    port: int | None = typer.Option(None, help="Port (default: settings.port)"),
    with_worker: bool = typer.Option(False, help="Also run `python -m worker` until exit"),
    workers: int = typer.Option(1, min=1, help="CPU worker processes with --with-worker"),
    gpus: str = typer.Option("", help="GPU ids for --with-worker, e.g. 0,1"),
) -> None:
    """Run the API (uvicorn), and with --with-worker a worker beside it.

    Refuses to start when tokens are required (a bind that is not loopback, or auth on)
    and no token exists yet: `ptychojobs token create NAME` first.
    """
    from app.main import create_app  # the web stack loads only for the command that serves

    settings = get_settings()
    configure_logging(settings.log_level)
    # The app must see the address it is bound to: tokens are required off loopback.
    address = {"host": host or settings.host, "port": port or settings.port}
    bound = settings.model_copy(update=address)
    # Migrate before anything reads the database (a worker, the token check).
    engine = make_engine(bound.resolved_database_url, busy_timeout_ms=bound.sqlite_busy_timeout_ms)
    try:
        upgrade_head(engine)
        _check_tokens(bound, engine)
    finally:
        engine.dispose()
    worker = None
    if with_worker:
        worker = start_worker(env=os.environ, workers=workers, gpus=gpus)
    try:
        uvicorn.run(
            create_app(bound),
            host=bound.host,
            port=bound.port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
        )
    finally:
        if worker is not None:
            stop_process(worker, grace_s=settings.shutdown_grace_s + 5)


def _check_tokens(settings: Settings, engine: Engine) -> None:
    """Exit unless tokens are off on loopback, or required and at least one exists."""
    if not settings.auth_required:
        if not settings.binds_loopback:
            message = f"authentication is off and the API binds to {settings.host}: anyone who"
            err_console.print(f"[red]warning:[/red] {message} reaches this port controls it")
        return
    with Session(engine) as session:
        live = auth.count_live_tokens(session=session)
    if live == 0:
        why = f"the API binds to {settings.host}" if settings.auth == "auto" else "auth is on"
        raise fail(
            f"API tokens are required ({why}) and none exists: run "
            "`ptychojobs token create NAME` first, or bind to 127.0.0.1",
            code=2,
        )


def reconstruction_options(engines: str, epochs: int | None) -> dict[str, Any]:
    """The run body's `reconstruction` from `--reconstruct lsqml,epie` and its epochs."""
    options: dict[str, Any] = {
        "engines": [name.strip() for name in engines.split(",") if name.strip()]
    }
    if epochs is not None:
        options["epochs"] = epochs
    return options


def submit(
    file: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="JSON body of POST /runs"
    ),
    phase_c_root: str | None = typer.Option(None, help="Phase C root (inside the data root)"),
    phase_d_root: str | None = typer.Option(None, help="Phase D root (inside the data root)"),
    artifact_root: str | None = typer.Option(None, help="Artifact root (default: per run)"),
    dose: float | None = typer.Option(None, help="Only this dose"),
    view: str | None = typer.Option(None, help="Only this view: baseline, dense or sparse"),
    gridsize: int | None = typer.Option(None, help="Only this gridsize: 1 or 2"),
    strict: bool = typer.Option(False, help="Refuse the run when Phase D data is missing"),
    dry_run: bool = typer.Option(False, help="Enumerate and write the manifest; train nothing"),
    epochs: int | None = typer.Option(None, min=1),
    n_groups: int | None = typer.Option(None, min=1),
    batch_size: int | None = typer.Option(None, min=1),
    accelerator: str | None = typer.Option(None, help="auto, cpu or gpu"),
    reconstruct: str | None = typer.Option(
        None, help="pty-chi reconstructions beside training, engines by comma: lsqml,epie"
    ),
    reconstruct_epochs: int | None = typer.Option(None, min=1, help="pty-chi epochs (100)"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Submit a run (POST /runs) from flags or a JSON file, and show what was enqueued."""
    if file is not None:
        body: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    elif phase_c_root and phase_d_root:
        body = {"phase_c_root": phase_c_root, "phase_d_root": phase_d_root}
        body |= {"strict": strict, "dry_run": dry_run}
        if artifact_root:
            body["artifact_root"] = artifact_root
        body["filters"] = {"dose": dose, "view": view, "gridsize": gridsize}
        training = {"epochs": epochs, "n_groups": n_groups, "batch_size": batch_size}
        body["training"] = {key: value for key, value in training.items() if value is not None}
        if accelerator:
            body["execution"] = {"accelerator": accelerator}
        if reconstruct:
            body["reconstruction"] = reconstruction_options(reconstruct, reconstruct_epochs)
    else:
        raise typer.BadParameter("give --file, or both --phase-c-root and --phase-d-root")
    with api(api_url) as client:
        try:
            run = client.submit_run(body)
        except ApiError as exc:
            console.print(f"[red]refused: {escape(str(exc))}[/red]")
            raise typer.Exit(1) from exc
    console.print(f"run {run['id']}: {run['status']}, {run['job_count']} jobs")
    console.print(progress_table(run["jobs"], title=f"run {run['id']}"))
    console.print(skips_table(run["skipped_views"]))


def status(
    run_id: int = typer.Argument(..., help="Run id"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Show a run's status, jobs and skipped views."""
    with api(api_url) as client:
        run = client.run(run_id)
        jobs = client.jobs(run_id)
        skips = client.skips(run_id)
    console.print(progress_table(jobs, title=f"run {run_id}: {run['status']}"))
    if skips:
        console.print(skips_table(skips))
    console.print(f"manifest: {run['manifest_path']}")


def demo(
    out: Path | None = typer.Option(
        None, help="Folder for the study, database, artifacts (default: demo-data)"
    ),
    epochs: int = typer.Option(2, min=1, help="Epochs per job"),
    n_groups: int = typer.Option(128, min=1, help="Training samples (groups) per job"),
    architecture: str = typer.Option(
        "unet", help="unet (learns within the demo's budget) or ptychopinn (the study's)"
    ),
    inputs: str = typer.Option("amplitudes+backprop", help="amplitudes or amplitudes+backprop"),
    timeout_s: float = typer.Option(1800.0, help="Give up (and cancel) after this long"),
    positions: int = typer.Option(1000, min=120, help="Scan positions of the demo study"),
    reconstruct: str | None = typer.Option(
        None,
        help="Also reconstruct each test split with pty-chi (engines by comma: lsqml,epie) "
        "and compare it with the networks; adds about a minute a job",
    ),
    reconstruct_epochs: int = typer.Option(100, min=1, help="pty-chi epochs"),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the API and worker up after the summary (for the dashboard)"
    ),
    use_settings: bool = typer.Option(
        False,
        "--use-settings",
        help="Use serve's data root and database (PTYCHOJOBS_*): `serve` shows the run later",
    ),
) -> None:
    """Simulate a small study, run it end to end with a local API and worker, summarise."""
    from app.cli.demo import DemoOptions, run_demo

    configure_logging("WARNING")
    data_root: Path | None = None
    database_url: str | None = None
    if use_settings:
        settings = get_settings()
        data_root, database_url = settings.data_root, settings.resolved_database_url
        out = out or data_root / "demo"
        if not out.resolve().is_relative_to(data_root):
            raise fail(f"--out {out} must lie inside the data root {data_root}", code=2)
    options = DemoOptions(
        out=out or Path("demo-data"),
        epochs=epochs,
        n_groups=n_groups,
        architecture=architecture,
        inputs=inputs,
        timeout_s=timeout_s,
        n_positions=positions,
        reconstruction=reconstruction_options(reconstruct, reconstruct_epochs)
        if reconstruct
        else None,
        keep=keep,
        data_root=data_root,
        database_url=database_url,
    )
    # Without a terminal (CI logs, pipes) rich assumes 80 columns; the summary needs more.
    wide = console if console.is_terminal else Console(width=140)
    raise typer.Exit(run_demo(options, wide))


def register(cli: typer.Typer) -> None:
    cli.command()(migrate)
    cli.command()(serve)
    cli.command()(submit)
    cli.command()(status)
    cli.command()(demo)
