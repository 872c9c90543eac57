"""Live progress: GET /runs/{id}/progress and the SSE stream GET /runs/{id}/events."""

from __future__ import annotations

import json
import queue as queues
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.core.config import Settings
from app.core.db import make_engine
from tests.api.conftest import StudyTree
from tests.api.run_states import claim, report_epoch, succeed
from tests.live_server import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[str, dict[str, Any]]


@pytest.fixture
def server(api_settings: Settings) -> Iterator[str]:
    with serve_in_thread(api_settings) as url:
        yield url


@pytest.fixture
def writer(api_settings: Settings, server: str) -> Iterator[Engine]:
    """The database as a worker sees it (the server has migrated it)."""
    engine = make_engine(api_settings.resolved_database_url)
    yield engine
    engine.dispose()


def submit(base_url: str, study: StudyTree, epochs: int = 3) -> dict[str, Any]:
    body = study.body(filters={"dose": 1000.0}, training={"epochs": epochs})
    response = httpx.post(f"{base_url}/runs", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def read_events(response: httpx.Response) -> Iterator[Event]:
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def listen(url: str, into: queues.Queue[Event | None]) -> None:
    with httpx.stream("GET", url, timeout=httpx.Timeout(30, read=60)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in read_events(response):
            into.put(event)
    into.put(None)


def next_event(events: queues.Queue[Event | None], kind: str, **match: Any) -> dict[str, Any]:
    """The next event of `kind` whose data has the `match` values (others are passed over)."""
    while True:
        item = events.get(timeout=20)
        assert item is not None, f"the stream ended before a {kind} event with {match}"
        if item[0] == kind and all(item[1].get(k) == v for k, v in match.items()):
            return item[1]


def test_the_stream_carries_progress_and_ends_with_the_run(
    server: str, writer: Engine, study: StudyTree
) -> None:
    run = submit(server, study, epochs=3)
    events: queues.Queue[Event | None] = queues.Queue()
    url = f"{server}/runs/{run['id']}/events?poll_s=0.05"
    listener = threading.Thread(target=listen, args=(url, events), daemon=True)
    listener.start()

    snapshot = next_event(events, "snapshot")
    assert [job["status"] for job in snapshot["jobs"]] == ["queued", "queued"]
    assert snapshot["skipped_count"] == 1
    assert snapshot["terminal"] is False

    first = claim(writer)
    running = next_event(events, "job", id=first.job_id, status="running")
    assert running["epochs_total"] == 3
    report_epoch(writer, first, epoch=2, epochs=3, loss=0.5)
    progress = next_event(events, "job", id=first.job_id, epoch=2)
    assert progress["epochs_total"] == 3
    assert progress["loss"] == 0.5
    assert progress["eta_s"] is not None
    assert progress["eta_s"] >= 0
    succeed(writer, first, epochs=3)
    done = next_event(events, "job", id=first.job_id, status="succeeded")
    assert done["metrics"]["phase_ssim"] == 0.5
    # Its phase MAE is the worker's flat object's: the live state says so in words.
    assert (done["beats_flat"], done["collapsed"]) == (False, False)
    assert done["verdict"] == "no better than flat"
    assert done["epoch"] == 3
    assert next_event(events, "run")["counts"] == {"queued": 1, "succeeded": 1}

    second = claim(writer)
    succeed(writer, second, epochs=3)
    end = next_event(events, "end")
    assert end["status"] == "succeeded"
    assert end["counts"] == {"succeeded": 2}
    assert events.get(timeout=10) is None  # the server closed the stream
    listener.join(timeout=10)


def test_a_finished_run_streams_its_snapshot_and_end_at_once(
    server: str, writer: Engine, study: StudyTree
) -> None:
    run = submit(server, study)
    for _ in range(2):
        succeed(writer, claim(writer), epochs=3)
    with httpx.stream("GET", f"{server}/runs/{run['id']}/events", timeout=10) as response:
        kinds = [kind for kind, _ in read_events(response)]
    assert kinds == ["snapshot", "end"]


def test_an_httpx_script_follows_a_run_to_its_end(
    server: str, writer: Engine, study: StudyTree
) -> None:
    run = submit(server, study, epochs=2)
    script = [sys.executable, str(ROOT / "examples" / "follow_run.py"), server, str(run["id"])]
    follower = subprocess.Popen(script, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):
            job = claim(writer)
            report_epoch(writer, job, epoch=1, epochs=2, loss=0.75)
            succeed(writer, job, epochs=2)
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, out
    assert out.splitlines()[0].startswith("snapshot: run")
    assert out.splitlines()[-1] == f"end: run {run['id']} succeeded {{'succeeded': 2}}"


def test_unknown_runs_have_no_stream(client: TestClient) -> None:
    response = client.get("/runs/99/events")
    assert response.status_code == 404, response.text


def test_progress_reads_epoch_of_total_and_eta(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    body = study.body(filters={"dose": 1000.0}, training={"epochs": 4})
    run = client.post("/runs", json=body).json()
    job = claim(api_engine)
    report_epoch(api_engine, job, epoch=3, epochs=4, loss=0.125)

    live = client.get(f"/runs/{run['id']}/progress").json()

    running, queued = live["jobs"]
    assert (running["status"], running["epoch"], running["epochs_total"]) == ("running", 3, 4)
    assert running["loss"] == 0.125
    assert running["worker"] == "worker-a"
    # Two of four epochs done in the elapsed time: as long again to go.
    assert running["eta_s"] == pytest.approx(running["elapsed_s"], abs=0.2)
    assert queued["eta_s"] is None
    assert (running["verdict"], running["beats_flat"], running["learned"]) == (None, None, None)
    assert live["eta_s"] is None
    assert live["status"] == "running"
    assert live["skipped_views"][0]["view"] == "sparse"
