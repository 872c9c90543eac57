"""`ptychojobs watch RUN`: follow a run through its server-sent events to its end.

On a terminal: a progress bar per job (epoch of total, loss, ETA) under one for the run.
Elsewhere (pipes, CI logs): one plain line per change, so the output reads top to bottom.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from app.cli.client import ApiUnreachable, PtychoClient
from app.cli.connect import API_URL_HELP, api

RECONNECTS = 5
RECONNECT_WAIT_S = 2.0


def duration(seconds: Any) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`; `-` when unknown."""
    if not isinstance(seconds, int | float):
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def dose_text(dose: float) -> str:
    return f"{dose:.0f}" if dose >= 1 and float(dose).is_integer() else f"{dose:g}"


def job_name(job: dict[str, Any]) -> str:
    return f"job {job['id']} dose {dose_text(job['dose'])} {job['view']} gs{job['gridsize']}"


def job_line(job: dict[str, Any]) -> str:
    """One job's state in one line: status, epoch of total, loss, ETA or error, verdict."""
    parts = [f"{job_name(job)}: {job['status']}"]
    parts.append(f"epoch {job.get('epoch') or 0}/{job['epochs_total']}")
    if job.get("loss") is not None:
        parts.append(f"loss {job['loss']:.4g}")
    if job["status"] in ("queued", "running"):
        parts.append(f"ETA {duration(job.get('eta_s'))}")
    if job.get("error"):
        parts.append(f"error: {job['error']}")
    if job.get("verdict"):
        parts.append(f"verdict: {job['verdict']}")
    return ", ".join(parts)


def run_line(run: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in run["counts"].items())
    eta = "" if run.get("terminal") else f", ETA {duration(run.get('eta_s'))}"
    return f"run {run['id']}: {run['status']} ({counts}){eta}"


class Display(Protocol):
    def snapshot(self, live: dict[str, Any]) -> None: ...
    def job(self, job: dict[str, Any]) -> None: ...
    def run(self, run: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class LineDisplay:
    """Plain lines, one per change: for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown: tuple[str, str] | None = None  # the run's status and counts last printed

    def _print(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)
        self.console.file.flush()  # a pipe buffers by blocks: each line goes out now

    def snapshot(self, live: dict[str, Any]) -> None:
        self.shown = (live["status"], str(live["counts"]))
        self._print(f"{run_line(live)}, {live['skipped_count']} skipped view(s)")
        for job in live["jobs"]:
            self._print(job_line(job))

    def job(self, job: dict[str, Any]) -> None:
        self._print(job_line(job))

    def run(self, run: dict[str, Any]) -> None:
        shown = (run["status"], str(run["counts"]))
        if shown != self.shown:  # a line when the run's status or counts change
            self.shown = shown
            self._print(run_line(run))

    def close(self) -> None:
        return None


class BarDisplay:
    """Rich progress bars, one per job under one for the run: for terminals."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[epoch]:>9}"),
            TextColumn("{task.fields[status]:<10}"),
            TextColumn("{task.fields[loss]:>12}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            refresh_per_second=4,
        )
        self.tasks: dict[int, TaskID] = {}
        self.run_task: TaskID | None = None
        self.progress.start()

    def snapshot(self, live: dict[str, Any]) -> None:
        fields: dict[str, Any] = {"epoch": "", "status": live["status"], "loss": "", "eta": ""}
        name = f"run {live['id']}"
        self.run_task = self.progress.add_task(name, total=live["job_count"], **fields)
        self.run(live)
        for job in live["jobs"]:
            self.tasks[job["id"]] = self.progress.add_task(
                job_name(job), total=job["epochs_total"], **_job_fields(job)
            )
            self.job(job)

    def job(self, job: dict[str, Any]) -> None:
        task = self.tasks.get(job["id"])
        if task is None:
            return
        epoch = job.get("epoch") or 0
        done = epoch if job["status"] != "running" else max(epoch - 1, 0)
        if job["status"] == "succeeded":
            done = job["epochs_total"]
        self.progress.update(task, completed=done, total=job["epochs_total"], **_job_fields(job))

    def run(self, run: dict[str, Any]) -> None:
        if self.run_task is None:
            return
        active = sum(run["counts"].get(status, 0) for status in ("queued", "running"))
        eta = "" if run.get("terminal") else duration(run.get("eta_s"))
        self.progress.update(
            self.run_task, completed=run["job_count"] - active, status=run["status"], eta=eta
        )

    def close(self) -> None:
        self.progress.stop()


def _job_fields(job: dict[str, Any]) -> dict[str, Any]:
    loss = job.get("loss")
    active = job["status"] in ("queued", "running")
    return {
        "epoch": f"{job.get('epoch') or 0}/{job['epochs_total']}",
        "status": job["status"],
        "loss": f"loss {loss:.4g}" if isinstance(loss, int | float) else "",
        "eta": duration(job.get("eta_s")) if active else "",
    }


def follow_run(
    client: PtychoClient, run_id: int, console: Console, *, poll_s: float | None = None
) -> dict[str, Any]:
    """Show the run's events until its `end`; returns the final run summary."""
    display: Display = BarDisplay(console) if console.is_terminal else LineDisplay(console)
    failures = 0
    try:
        while True:
            try:
                for event in client.run_events(run_id, poll_s=poll_s):
                    failures = 0
                    if event.kind == "snapshot":
                        display.snapshot(event.data)
                    elif event.kind == "job":
                        display.job(event.data)
                    elif event.kind in ("run", "end"):
                        display.run(event.data)
                    if event.kind == "end":
                        return event.data
            except ApiUnreachable:
                failures += 1
                if failures > RECONNECTS:
                    raise
                time.sleep(RECONNECT_WAIT_S)
            else:
                failures += 1  # the stream closed without `end`: the server went away
                if failures > RECONNECTS:
                    raise RuntimeError(f"the event stream of run {run_id} keeps closing")
                time.sleep(RECONNECT_WAIT_S)
    finally:
        display.close()


def watch(
    run_id: int = typer.Argument(..., help="Run id"),
    api_url: str | None = typer.Option(None, help=API_URL_HELP),
) -> None:
    """Follow a run live until it ends: progress bars on a terminal, plain lines elsewhere."""
    console = Console()
    with api(api_url) as client:
        final = follow_run(client, run_id, console)
    console.print(escape(f"run {run_id} ended: {final['status']}"), highlight=False)
    if final["status"] not in ("succeeded", "dry_run"):
        raise typer.Exit(1)
