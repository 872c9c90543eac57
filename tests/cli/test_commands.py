"""The CLI over a real API: list, watch, logs, cancel, retry, report; one-line errors."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.cli import cli
from app.cli.client import default_api_url
from app.cli.processes import free_port
from app.core.config import Settings
from tests.api.conftest import StudyTree
from tests.api.run_states import claim, fail, report_epoch, succeed

runner = CliRunner()


def submit(server: str, study: StudyTree, epochs: int = 3) -> int:
    body = study.body(filters={"dose": 1000.0}, training={"epochs": epochs})
    response = httpx.post(f"{server}/runs", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def ptychojobs(server: str, *argv: str) -> tuple[int, str]:
    result = runner.invoke(cli, [*argv, "--api-url", server])
    return result.exit_code, result.output


def test_list_shows_runs_newest_first(server: str, engine: Engine, study: StudyTree) -> None:
    submit(server, study)
    submit(server, study)

    code, out = ptychojobs(server, "list")

    assert code == 0, out
    assert "runs: 2" in out
    rows = [line for line in out.splitlines() if "queued" in line]
    assert [row.split("│")[1].strip() for row in rows] == ["2", "1"]


def test_watch_prints_a_line_per_change_until_the_run_ends(
    server: str, engine: Engine, study: StudyTree
) -> None:
    run_id = submit(server, study, epochs=3)

    def work() -> None:
        time.sleep(0.5)  # let watch connect first
        job = claim(engine)
        report_epoch(engine, job, epoch=2, epochs=3, loss=0.5)
        time.sleep(0.7)
        succeed(engine, job, epochs=3)
        succeed(engine, claim(engine), epochs=3)

    worker = threading.Thread(target=work)
    worker.start()
    code, out = ptychojobs(server, "watch", str(run_id))
    worker.join()

    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"run {run_id}: queued (2 queued), ETA -, 1 skipped view(s)"
    assert "job 1 dose 1000 baseline gs1: running, epoch 2/3, loss 0.5, ETA" in out
    assert "job 2 dose 1000 dense gs2: succeeded, epoch 3/3" in out
    assert lines[-1] == f"run {run_id} ended: succeeded"


def test_logs_follow_prints_the_log_until_the_job_ends(
    server: str, engine: Engine, study: StudyTree
) -> None:
    submit(server, study, epochs=2)
    job = claim(engine)
    report_epoch(engine, job, epoch=1, epochs=2, loss=0.5)
    threading.Timer(1.0, lambda: succeed(engine, job, epochs=2)).start()

    code, out = ptychojobs(server, "logs", str(job.job_id), "--follow", "--poll-s", "0.1")

    assert code == 0, out
    assert "epoch 1/2 train_loss=0.5" in out
    assert out.rstrip().endswith("done status=succeeded")  # written after the first read


def test_cancel_and_retry_a_run_and_a_job(server: str, engine: Engine, study: StudyTree) -> None:
    run_id = submit(server, study)

    code, out = ptychojobs(server, "cancel", "--job", "1")
    assert (code, out.strip()) == (0, "job 1: cancelled")
    code, out = ptychojobs(server, "retry", "--job", "1")
    assert (code, out.strip()) == (0, "job 1: queued")
    code, out = ptychojobs(server, "cancel", str(run_id))
    assert (code, out.strip()) == (0, f"run {run_id}: cancelled, 2 cancelled")
    code, out = ptychojobs(server, "retry", str(run_id))
    assert (code, out.strip()) == (0, f"run {run_id}: queued, 2 queued")

    code, out = ptychojobs(server, "retry", "--job", "1")  # a queued job does not retry
    assert code == 1
    assert "HTTP 409" in out
    assert "only failed or cancelled" in out
    code, out = ptychojobs(server, "cancel", str(run_id), "--job", "1")
    assert code == 2
    assert "give a run id, or --job" in out


def test_report_prints_a_table_csv_and_saves_the_figure(
    server: str, engine: Engine, study: StudyTree, tmp_path: Path
) -> None:
    run_id = submit(server, study)
    succeed(engine, claim(engine), epochs=3, phase_ssim=0.42)
    for _ in range(3):
        fail(engine, claim(engine))

    code, out = ptychojobs(server, "report", str(run_id), "--figure", str(tmp_path / "f.png"))
    assert code == 0, out
    assert "model / flat / input" in out
    assert "0.42 / 0.1 / 0.2" in out  # phase SSIM: the model, the flat object, the input only
    assert "skipped" in out
    # The model's phase MAE is the flat object's: the row says so in words.
    baseline_row = next(line for line in out.splitlines() if "succeeded" in line)
    assert "no better than flat" in baseline_row
    assert "flat: flat object (no learning); input: input only (no network)" in out
    assert "1 no better than flat" in out
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")

    code, out = ptychojobs(server, "report", str(run_id), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["view"], row["status"]) for row in rows] == [
        ("baseline", "succeeded"),
        ("dense", "failed"),
        ("sparse", "skipped"),
    ]
    assert [row["verdict"] for row in rows] == ["no better than flat", "", ""]
    assert rows[0]["phase_mae_input_only"] == "0.2"


def test_an_unreachable_api_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTYCHOJOBS_")}
    env |= {"PTYCHOJOBS_PORT": str(port), "PTYCHOJOBS_DATA_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"error: cannot reach the ptychojobs API at http://127.0.0.1:{port} (connection refused)"
    )


def test_the_cli_finds_the_api_where_serve_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PTYCHOJOBS_API_URL", "PTYCHOJOBS_HOST", "PTYCHOJOBS_PORT"):
        monkeypatch.delenv(name, raising=False)

    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    assert default_api_url(settings(port=9123)) == "http://127.0.0.1:9123"
    assert default_api_url(settings(host="0.0.0.0", port=80)) == "http://127.0.0.1:80"
    assert default_api_url(settings(host="::1")) == "http://[::1]:8000"
    assert default_api_url(settings(api_url="http://api:1", port=5)) == "http://api:1"
