"""Rich tables of runs, jobs and skip events, shared by the CLI and the demo."""

from __future__ import annotations

from typing import Any

from rich.table import Table

METRIC_COLUMNS = (
    ("amp MAE", "amplitude_mae"),
    ("phase MAE", "phase_mae"),
    ("phase SSIM", "phase_ssim"),
    ("phase corr", "phase_correlation"),
)
STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "dry_run": "magenta",
}


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}g}"
    return "-"


def _dose(dose: float) -> str:
    return f"{dose:.0f}" if dose >= 1 and float(dose).is_integer() else f"{dose:g}"


def _status(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _epoch(progress: dict[str, Any]) -> str:
    """`2/5` (the epoch in progress, from 1, of the total), or the epoch alone, or `-`."""
    epoch, epochs = progress.get("epoch"), progress.get("epochs")
    if epoch is None:
        return "-"
    return f"{epoch}/{epochs}" if epochs is not None else str(epoch)


def progress_table(jobs: list[dict[str, Any]], *, title: str) -> Table:
    """One row per job: status, attempts and live progress."""
    table = Table(title=title)
    for column in ("job", "dose", "view", "gs", "status", "attempt", "epoch", "step", "loss"):
        table.add_column(column, justify="right" if column not in ("view", "status") else "left")
    for job in jobs:
        progress = job.get("progress") or {}
        table.add_row(
            str(job["id"]),
            _dose(job["dose"]),
            job["view"],
            str(job["gridsize"]),
            _status(job["status"]),
            str(job["attempts"]),
            _epoch(progress),
            str(progress.get("step") if progress.get("step") is not None else "-"),
            _number(progress.get("loss")),
        )
    return table


def summary_table(manifest: dict[str, Any]) -> Table:
    """One row per job of a manifest: status, final loss and key quality metrics."""
    table = Table(title=f"run {manifest.get('run_id')} summary: {manifest.get('status')}")
    for column in ("dose", "view", "status", "epochs", "final loss"):
        table.add_column(column, justify="left" if column in ("view", "status") else "right")
    for label, _ in METRIC_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("time s", justify="right")
    for job in manifest["jobs"]:
        result = job.get("result") or {}
        metrics = result.get("metrics") or {}
        table.add_row(
            _dose(job["dose"]),
            job["view"],
            _status(job["status"]),
            str(result.get("epochs_completed", "-")),
            _number(result.get("final_loss")),
            *(_number(metrics.get(key), 3) for _, key in METRIC_COLUMNS),
            _number(result.get("duration_s"), 3),
        )
    return table


def short_reason(reason: str) -> str:
    """A skip reason without the list of paths checked (the manifest keeps the full text)."""
    head = reason.split(" (checked ", 1)[0].split(" (layouts checked", 1)[0]
    _, found, rejection = reason.partition("recorded a rejection: ")
    return f"{head}; rejected: {rejection}" if found else head


def skips_table(skipped: list[dict[str, Any]]) -> Table:
    """One row per skipped view, with its reason."""
    table = Table(title=f"skipped views: {len(skipped)}")
    for column in ("dose", "view", "code", "reason"):
        table.add_column(column, overflow="fold", justify="right" if column == "dose" else "left")
    for skip in skipped:
        reason = short_reason(skip["reason"])
        table.add_row(_dose(skip["dose"]), skip["view"], skip.get("code", "-"), reason)
    return table
