"""CLI tables: a running job's epoch reads `epoch/epochs`, counted from 1; each trained job's
verdict against the flat object reads in words."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from app.cli.tables import (
    comparison_table,
    progress_table,
    summary_table,
    verdict_cell,
    verdict_note,
)
from app.cli.watch import job_line


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


def _manifest_job(job_id: int, status: str, result: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": job_id, "dose": 1e3, "view": "dense", "status": status, "result": result}


def _trained(phase_mae: float, phase_correlation: float, **extra: Any) -> dict[str, Any]:
    flat = {"phase_mae": 0.2, "phase_correlation": 0.0}
    return {
        "status": "succeeded",
        "epochs_completed": 2,
        "final_loss": 0.25,
        "metrics": {"phase_mae": phase_mae, "phase_correlation": phase_correlation},
        "baselines": {"flat": {"ours": flat}},
        **extra,
    }


def test_the_summary_says_in_words_which_jobs_learned_nothing() -> None:
    manifest = {
        "run_id": 7,
        "status": "failed",
        "jobs": [
            _manifest_job(1, "succeeded", _trained(0.1, 0.8)),
            _manifest_job(2, "succeeded", _trained(0.2, 0.1)),
            _manifest_job(3, "succeeded", _trained(0.1, 0.8, collapsed=True)),
            _manifest_job(4, "succeeded", _trained(0.19, 0.8)),
            _manifest_job(5, "failed", {"status": "failed"}),
        ],
    }
    console = Console(width=250, record=True, color_system=None)
    console.print(summary_table(manifest))
    text = console.export_text()
    rows = [line for line in text.splitlines() if "dense" in line]
    cells = [[cell.strip() for cell in row.strip().strip("│").split("│")] for row in rows]

    assert [row[-1] for row in cells] == [
        "learned",
        "no better than flat",
        "collapsed, learned",
        "beats flat only",
        "-",
    ]
    assert [row[-3] for row in cells] == ["0.2", "0.2", "0.2", "0.2", "-"]  # flat phase MAE
    assert "of 4 judged job(s): 2 learned, 1 beats flat only, 1 no better than flat" in text
    assert "1 collapsed" in text

    note = verdict_note(manifest)
    assert note is not None
    assert "of 4 trained job(s), 1 no better than flat, 1 collapsed" in note
    assert verdict_note({"jobs": [manifest["jobs"][0], manifest["jobs"][4]]}) is None


def test_a_verdict_cell_is_the_words_with_colour_only_beside_them() -> None:
    assert verdict_cell("no better than flat") == "[bold red]no better than flat[/bold red]"
    assert verdict_cell("collapsed, learned", collapsed=True).startswith("[bold red]")
    assert verdict_cell("learned") == "[green]learned[/green]"
    assert verdict_cell(None) == "-"


def test_a_finished_jobs_line_carries_its_verdict() -> None:
    job = {**_job(1, {}), "status": "succeeded", "epoch": 2, "epochs_total": 2, "loss": None}

    assert job_line({**job, "verdict": "no better than flat"}).endswith(
        "succeeded, epoch 2/2, verdict: no better than flat"
    )
    assert "verdict" not in job_line({**job, "verdict": None})


def test_the_three_way_table_sets_each_network_beside_pty_chi_on_its_test_split() -> None:
    reference = {"phase_mae": 0.05, "phase_correlation": 0.95}
    manifest = {
        "run_id": 4,
        "jobs": [
            _manifest_job(1, "succeeded", _trained(0.12, 0.7)),
            {**_manifest_job(2, "succeeded", _trained(0.19, 0.1)), "view": "baseline"},
        ],
        "reconstruction_jobs": [
            {
                "dose": 1e3,
                "view": "dense",
                "split": "train",
                "algorithm": "LSQML",
                "result": {"metrics": {"phase_mae": 0.9, "phase_correlation": 0.0}},
            },
            {
                "dose": 1e3,
                "view": "dense",
                "split": "test",
                "algorithm": "LSQML",
                "result": {"metrics": reference},
            },
        ],
    }
    console = Console(width=200, record=True, color_system=None)
    console.print(comparison_table(manifest))
    rows = [line for line in console.export_text().splitlines() if "1000" in line]
    cells = [[cell.strip() for cell in row.strip().strip("│").split("│")] for row in rows]
    assert cells == [
        ["1000", "dense", "0.12 / 0.7", "0.05 / 0.95 (LSQML)", "0.2", "+0.070", "learned"],
        ["1000", "baseline", "0.19 / 0.1", "- / - (-)", "0.2", "-", "beats flat only"],
    ]
