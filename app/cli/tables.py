"""Rich tables of runs, jobs and skip events, shared by the CLI and the demo."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from app.verdict import (
    BEATS_FLAT_ONLY,
    COLLAPSED,
    LEARNED,
    NO_BETTER_THAN_FLAT,
    RULE,
    flat_metrics,
    tally,
    verdict,
    verdict_label,
)

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
# The colour only repeats what the word says: a pipe or a screen reader gets the word.
VERDICT_STYLE = {
    LEARNED: "green",
    BEATS_FLAT_ONLY: "yellow",
    NO_BETTER_THAN_FLAT: "bold red",
    COLLAPSED: "bold red",
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


def verdict_cell(label: str | None, *, collapsed: bool = False) -> str:
    """A verdict's words ("no better than flat", "collapsed, …"), styled; `-` when unjudged."""
    if not label:
        return "-"
    words = label.split(", ")
    style = VERDICT_STYLE.get(COLLAPSED if collapsed else words[-1])
    return f"[{style}]{escape(label)}[/{style}]" if style else escape(label)


def verdict_summary(counts: dict[str, int], judged: int) -> str:
    """One line for under a table: how many of the judged jobs each word applies to."""
    if not judged:
        return "no job judged against the flat object yet"
    parts = [f"{counts.get(word, 0)} {word}" for word in (LEARNED, BEATS_FLAT_ONLY)]
    parts += [f"{counts.get(word, 0)} {word}" for word in (NO_BETTER_THAN_FLAT, COLLAPSED)]
    return f"of {judged} judged job(s): " + ", ".join(parts)


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
    """One row per job of a manifest: status, final loss, key quality metrics, the flat
    object's phase MAE and the verdict; the caption counts the verdicts."""
    table = Table(title=f"run {manifest.get('run_id')} summary: {manifest.get('status')}")
    for column in ("dose", "view", "status", "epochs", "final loss"):
        table.add_column(column, justify="left" if column in ("view", "status") else "right")
    for label, _ in METRIC_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("flat phase MAE", justify="right")
    table.add_column("time s", justify="right")
    table.add_column("verdict", justify="left", no_wrap=True)
    judged = []
    for job in manifest["jobs"]:
        result = job.get("result") or {}
        metrics = result.get("metrics") or {}
        found = verdict(result)
        if found["beats_flat"] is not None or found["collapsed"]:
            judged.append(found)
        table.add_row(
            _dose(job["dose"]),
            job["view"],
            _status(job["status"]),
            str(result.get("epochs_completed", "-")),
            _number(result.get("final_loss")),
            *(_number(metrics.get(key), 3) for _, key in METRIC_COLUMNS),
            _number(flat_metrics(result).get("phase_mae"), 3),
            _number(result.get("duration_s"), 3),
            verdict_cell(verdict_label(found), collapsed=found["collapsed"]),
        )
    table.caption = (
        f"{verdict_summary(tally(judged), len(judged))}\nflat: a flat object (no learning); {RULE}"
    )
    return table


def verdict_note(manifest: dict[str, Any]) -> str | None:
    """A line for after the summary when a trained job learned nothing; None when all did."""
    found = [verdict(job.get("result")) for job in manifest["jobs"]]
    flat = sum(1 for judged in found if judged["beats_flat"] is False)
    collapsed = sum(1 for judged in found if judged["collapsed"])
    judged = sum(1 for one in found if one["beats_flat"] is not None or one["collapsed"])
    if not flat and not collapsed:
        return None
    said = [f"{flat} no better than flat"] if flat else []
    said += [f"{collapsed} collapsed"] if collapsed else []
    return (
        f"[bold red]warning:[/bold red] of {judged} trained job(s), {', '.join(said)} "
        "(flat: a flat object, no learning); see the verdict column"
    )


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


def comparison_table(manifest: dict[str, Any]) -> Table:
    """The three-way comparison per dose × view: each network, pty-chi on the same test split
    and the flat object, by phase MAE and phase correlation (study.md §9, Phase G)."""
    table = Table(title=f"run {manifest.get('run_id')}: network, pty-chi and the flat object")
    for column in ("dose", "view", "network phase MAE / corr"):
        table.add_column(column, justify="left" if column == "view" else "right")
    table.add_column("pty-chi phase MAE / corr", justify="right")
    table.add_column("flat phase MAE", justify="right")
    table.add_column("network − pty-chi phase MAE", justify="right")
    table.add_column("verdict", justify="left", no_wrap=True)
    references: dict[tuple[float, str], list[tuple[str, dict[str, Any]]]] = {}
    for job in manifest.get("reconstruction_jobs") or []:
        if job.get("split") == "test" and (job.get("result") or {}).get("metrics"):
            key = (float(job["dose"]), str(job["view"]))
            references.setdefault(key, []).append((job["algorithm"], job["result"]["metrics"]))
    for job in manifest["jobs"]:
        result = job.get("result") or {}
        if not result.get("metrics"):
            continue
        ours = result["metrics"]
        found = references.get((float(job["dose"]), str(job["view"]))) or [("-", {})]
        algorithm, theirs = found[0]
        both = isinstance(ours.get("phase_mae"), float) and isinstance(
            theirs.get("phase_mae"), float
        )
        found_verdict = verdict(result)
        table.add_row(
            _dose(job["dose"]),
            job["view"],
            f"{_number(ours.get('phase_mae'), 3)} / {_number(ours.get('phase_correlation'), 3)}",
            f"{_number(theirs.get('phase_mae'), 3)} / "
            f"{_number(theirs.get('phase_correlation'), 3)} ({algorithm})",
            _number(flat_metrics(result).get("phase_mae"), 3),
            f"{ours['phase_mae'] - theirs['phase_mae']:+.3f}" if both else "-",
            verdict_cell(verdict_label(found_verdict), collapsed=found_verdict["collapsed"]),
        )
    table.caption = "the network's verdict is against the flat object; " + RULE
    return table
