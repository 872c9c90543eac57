"""CLI tables: a running job's epoch reads `epoch/epochs`, counted from 1."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from app.cli.tables import progress_table


def _job(job_id: int, progress: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job_id,
        "dose": 1e4,
        "view": "dense",
        "gridsize": 1,
        "status": "running",
        "attempts": 1,
        "progress": progress,
    }


def _cells(jobs: list[dict[str, Any]]) -> list[list[str]]:
    """The table's body rows, as the text of each cell."""
    console = Console(width=200, record=True, color_system=None)
    console.print(progress_table(jobs, title="run 1"))
    rows = [line for line in console.export_text().splitlines() if "dense" in line]
    return [[cell.strip() for cell in row.strip().strip("│").split("│")] for row in rows]


def test_epoch_column_shows_epoch_of_total_or_a_dash() -> None:
    jobs = [
        _job(1, {"epoch": 2, "epochs": 2, "step": 12, "loss": 0.5}),
        _job(2, {"epoch": 3, "epochs": None, "step": 7, "loss": None}),
        _job(3, {"epoch": None, "epochs": None, "step": None, "loss": None}),
    ]
    epoch_step_loss = [cells[6:] for cells in _cells(jobs)]
    assert epoch_step_loss == [["2/2", "12", "0.5"], ["3", "7", "-"], ["-", "-", "-"]]
