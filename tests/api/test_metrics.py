"""Operations: Prometheus /metrics, live workers in /health, offline docs, retrying one job."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.api.run_states import claim, fail, report_epoch, succeed


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{sample} not in:\n{text}"
    return float(match[1])


def test_metrics_count_jobs_queue_depth_latency_and_durations(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    client.post("/runs", json=study.body(filters={"dose": 1000.0}))
    succeed(api_engine, claim(api_engine), epochs=1)
    claim(api_engine, worker="worker-b")  # running

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert _value(text, 'ptychojobs_jobs{status="succeeded"}') == 1
    assert _value(text, 'ptychojobs_jobs{status="running"}') == 1
    assert _value(text, "ptychojobs_queue_depth") == 0
    assert _value(text, 'ptychojobs_runs{status="running"}') == 1
    assert _value(text, "ptychojobs_live_workers") == 1
    assert _value(text, "ptychojobs_claim_latency_seconds_count") == 2
    assert _value(text, 'ptychojobs_attempt_duration_seconds_count{outcome="succeeded"}') == 1
    assert _value(text, 'ptychojobs_job_duration_seconds_count{status="succeeded"}') == 1


def test_health_names_the_workers_holding_jobs(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    assert client.get("/health").json()["workers"] == []
    client.post("/runs", json=study.body(filters={"dose": 1000.0}))
    job = claim(api_engine, worker="gpu-host:0")
    report_epoch(api_engine, job, epoch=1, epochs=2, loss=1.0)

    health = client.get("/health").json()

    assert health["status"] == "ok"
    assert health["live_worker_count"] == 1
    (worker,) = health["workers"]
    assert worker["name"] == "gpu-host:0"
    assert worker["jobs"] == [job.job_id]
    assert 0 <= worker["seconds_since_heartbeat"] < 30
    assert worker["lease_expired"] is False


def test_docs_pages_load_their_assets_from_the_service(client: TestClient) -> None:
    for page, assets in (
        ("/docs", ["/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css"]),
        ("/redoc", ["/static/redoc/redoc.standalone.js"]),
    ):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert urls, page
        assert all(url.startswith("/") for url in urls), urls  # nothing from a CDN
        for asset in assets:
            assert asset in urls
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 100_000, asset
    assert client.get("/static/swagger-ui/..%2F..%2Fmain.py").status_code == 404
    assert client.get("/static/other/x.js").status_code == 404


def test_one_failed_job_retries_and_others_refuse(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    client.post("/runs", json=study.body(filters={"dose": 1000.0}))
    first = claim(api_engine)
    succeed(api_engine, first, epochs=1)
    for _ in range(3):
        second = claim(api_engine)
        fail(api_engine, second)
    assert client.get(f"/jobs/{second.job_id}").json()["status"] == "failed"

    retried = client.post(f"/jobs/{second.job_id}/retry")

    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["failures"]) == ("queued", 0)
    refused = client.post(f"/jobs/{first.job_id}/retry")
    assert refused.status_code == 409
    assert "only failed or cancelled" in refused.json()["detail"]
    assert client.post("/jobs/999/retry").status_code == 404
