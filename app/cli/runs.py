"""Run and job commands over the API: `list`, `logs`, `cancel`, `retry`, `report`."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.cli.client import ACTIVE_JOB_STATUSES
from app.cli.connect import API_URL_HELP, api, fail
from app.cli.tables import verdict_cell
from app.cli.watch import dose_text, duration, watch

console = Console()
if not console.is_terminal:
    console = Console(width=240)  # pipes and logs: rich would fold tables at 80 columns

REPORT_METRICS = (
    ("phase SSIM", "phase_ssim"),
    ("amp MAE", "amplitude_mae"),
    ("phase MAE", "phase_mae"),
    ("phase FRC50", "phase_frc50"),
    ("phase corr", "phase_correlation"),
)


def list_runs(
    status: str | None = typer.Option(None, help="Only runs with this status"),
    limit: int = typer.Option(50, min=1, max=500, help="At most this many, newest first"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """List runs, newest first, with their status and job counts."""
    with api(api_url) as client:
        page = client.runs(limit=limit, status=status)
    table = Table(title=f"runs: {page['count']}")
    for column in ("run", "status", "created", "jobs", "counts", "skipped"):
        numeric = column in ("run", "jobs", "skipped")
        table.add_column(column, justify="right" if numeric else "left")
    for run in page["data"]:
        counts = ", ".join(f"{n} {s}" for s, n in run["counts"].items())
        created = datetime.fromisoformat(run["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(run["id"]),
            run["status"],
            created,
            str(run["job_count"]),
            counts,
            str(run["skipped_count"]),
        )
    console.print(table)


def logs(
    job_id: int = typer.Argument(..., help="Job id"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends"),
    poll_s: float = typer.Option(1.0, min=0.05, help="Wait between reads with --follow"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Print a job's train.log; with --follow, go on as it grows until the job ends."""
    offset = 0
    with api(api_url) as client:
        while True:
            text, offset = client.job_log(job_id, offset=offset)
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
                continue  # there may be more right away
            if not follow or client.job(job_id)["status"] not in ACTIVE_JOB_STATUSES:
                # One last read: lines written between the read and the status check.
                text, offset = client.job_log(job_id, offset=offset)
                sys.stdout.write(text)
                return
            time.sleep(poll_s)


def cancel(
    run_id: int | None = typer.Argument(None, help="Run id: cancel its queued and running jobs"),
    job: int | None = typer.Option(None, "--job", help="Cancel only this job"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Cancel a run (or one job with --job): queued jobs at once, running ones are asked to stop."""
    target = _one_target(run_id, job)
    with api(api_url) as client:
        if job is not None:
            done = client.cancel_job(job)
            _said(f"job {job}: {done['status']}" + _asked(done))
        else:
            run = client.cancel_run(target)
            _said(f"run {target}: {run['status']}, {_counts(run)}")


def retry(
    run_id: int | None = typer.Argument(None, help="Run id: requeue its failed and cancelled jobs"),
    job: int | None = typer.Option(None, "--job", help="Requeue only this job"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Requeue a run's failed and cancelled jobs (or one job with --job), with fresh attempts."""
    target = _one_target(run_id, job)
    with api(api_url) as client:
        if job is not None:
            _said(f"job {job}: {client.retry_job(job)['status']}")
        else:
            run = client.retry_run(target)
            _said(f"run {target}: {run['status']}, {_counts(run)}")


def report(
    run_id: int = typer.Argument(..., help="Run id"),
    csv: bool = typer.Option(False, "--csv", help="Print the report as CSV"),
    figure: Path | None = typer.Option(None, help="Also save the report figure (PNG) here"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Show a run's quality per dose × view beside its baselines (model / flat / input only)."""
    with api(api_url) as client:
        if csv:
            sys.stdout.write(client.report_csv(run_id))
        else:
            console.print(report_table(client.report(run_id)))
        if figure is not None:
            figure.write_bytes(client.report_figure(run_id))
            Console(stderr=True).print(f"figure: {escape(str(figure))}", highlight=False)


def report_table(document: dict[str, Any]) -> Table:
    """Rows in study order; each metric cell reads `model / flat object / input only`, and
    the verdict says in words whether the model beat the flat object (or collapsed)."""
    labels = document.get("baseline_labels") or {}
    caption = [
        f"flat: {labels.get('flat', 'flat object (no learning)')}; "
        f"input: {labels.get('input_only', 'input only (no network)')}; "
        "skill: phase MAE against the flat object (1 perfect, 0 no better)"
    ]
    if document.get("verdict_rule"):
        caption.append(str(document["verdict_rule"]))
    counts = document.get("verdict_counts") or {}
    if any(counts.values()):
        caption.append("; ".join(f"{n} {word}" for word, n in counts.items() if n))
    table = Table(
        title=f"run {document['run_id']} report: {document['status']}",
        caption="\n".join(caption),
    )
    for column in ("dose", "view", "gs", "status", "epochs", "time"):
        table.add_column(column, justify="left" if column in ("view", "status") else "right")
    for label, _ in REPORT_METRICS:
        table.add_column(f"{label}\nmodel / flat / input", justify="right")
    table.add_column("phase MAE\nskill", justify="right")
    with_ptychi = any(row.get("ptychi") for row in document["rows"])
    if with_ptychi:  # the run's iterative reference: its metrics, and the model's delta
        for label, _ in REPORT_METRICS:
            table.add_column(f"{label}\npty-chi / Δ", justify="right")
    table.add_column("verdict", justify="left", no_wrap=True)
    for row in document["rows"]:
        flat = row["baselines"].get("flat", {})
        alone = row["baselines"].get("input_only", {})
        cells = [
            f"{_number(row['metrics'].get(key))} / {_number(flat.get(key))}"
            f" / {_number(alone.get(key))}"
            for _, key in REPORT_METRICS
        ]
        skill = (row.get("skill") or {}).get("model", {}).get("phase_mae")
        if with_ptychi:
            engines = list((row.get("ptychi") or {}).values())
            theirs = engines[0]["metrics"] if engines else {}
            deltas = row.get("vs_PtyChi") or {}
            cells.append(_number(skill))
            cells += [
                f"{_number(theirs.get(key))} / {_number(deltas.get(key))}"
                for _, key in REPORT_METRICS
            ]
        else:
            cells.append(_number(skill))
        table.add_row(
            dose_text(row["dose"]),
            row["view"],
            str(row["gridsize"] or "-"),
            row["status"],
            str(row["epochs_completed"] if row["epochs_completed"] is not None else "-"),
            duration(row["duration_s"]),
            *cells,
            verdict_cell(row.get("verdict"), collapsed=bool(row.get("collapsed"))),
        )
    return table


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def _one_target(run_id: int | None, job: int | None) -> int:
    if (run_id is None) == (job is None):
        raise fail("give a run id, or --job JOB_ID (not both)", code=2)
    return run_id if run_id is not None else 0


def _counts(run: dict[str, Any]) -> str:
    return ", ".join(f"{n} {status}" for status, n in run["counts"].items()) or "no jobs"


def _asked(job: dict[str, Any]) -> str:
    return " (asked to stop)" if job.get("cancel_requested") and job["status"] == "running" else ""


def _said(text: str) -> None:
    console.print(escape(text), highlight=False)


def register(cli: typer.Typer) -> None:
    cli.command("list")(list_runs)
    cli.command()(watch)
    cli.command()(logs)
    cli.command()(cancel)
    cli.command()(retry)
    cli.command()(report)
