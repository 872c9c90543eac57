"""Hostile input: every bad request is a short, strict-JSON 4xx, fast, and stores nothing."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.security.conftest import row_counts

MAX_ERROR_BYTES = 20_000  # a refusal never echoes more than this


def _strict_json(text: str) -> Any:
    """Parse as strict JSON: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _refused(
    client: TestClient, engine: Engine, method: str, url: str, code: int, **kwargs: Any
) -> Any:
    before = row_counts(engine)
    started = time.monotonic()
    response = client.request(method, url, **kwargs)
    assert time.monotonic() - started < 5.0, url
    assert response.status_code == code, response.text[:2000]
    assert len(response.content) < MAX_ERROR_BYTES, len(response.content)
    assert row_counts(engine) == before
    return _strict_json(response.text)


@pytest.mark.parametrize(
    "change",
    [
        {"training": {"epochs": 10**18}},
        {"training": {"epochs": 0}},
        {"training": {"batch_size": 10**9}},
        {"training": {"n_groups": 10**12}},
        {"training": {"seed": 2**80}},
        {"training": {"seed": -1}},
        {"training": {"lr": 10.0}},
        {"training": {"lr": 0}},
        {"execution": {"devices": 10**6}},
        {"execution": {"num_workers": 10**6}},
        {"execution": {"cluster": {"mem": "1" * 100}}},
        {"design": {"doses": [1e300]}},
        {"design": {"neighbor_count": 10**9}},
        {"design": {"seeds": {"simulation": 2**40}}},
        {"filters": {"dose": 1e300}},
        {"design": {"overlap_fractions": {"d" * 10_000: 0.5}}},
    ],
)
def test_options_have_upper_bounds(
    client: TestClient, engine: Engine, study: StudyTree, change: dict[str, Any]
) -> None:
    detail = _refused(client, engine, "POST", "/runs", 422, json={**study.body(), **change})
    (section,) = change
    assert detail["detail"][0]["loc"][:2] == ["body", section], detail


@pytest.mark.parametrize(
    "raw",
    [
        '"training": {"lr": NaN}',
        '"training": {"lr": Infinity}',
        '"training": {"lr": -Infinity}',
        '"training": {"lr": 1e400}',
        '"design": {"doses": [NaN]}',
        '"design": {"doses": [1e400]}',
        '"filters": {"dose": NaN}',
        '"training": {"epochs": 1e400}',
        '"training": {"seed": 100000000000000000000000000000000000000000000000000}',
    ],
)
def test_non_finite_numbers_are_refused_in_strict_json(
    client: TestClient, engine: Engine, study: StudyTree, raw: str
) -> None:
    body = json.dumps(study.body())[:-1] + ", " + raw + "}"
    headers = {"Content-Type": "application/json"}
    _refused(client, engine, "POST", "/runs", 422, content=body, headers=headers)


@pytest.mark.parametrize(
    "path",
    [
        "a\x00b",  # NUL
        "\ud800",  # a lone surrogate
        "x/" * 200_000,  # a 400 KB path
        "d" * 300,  # a component over 255 bytes
    ],
)
def test_bad_paths_are_refused_before_any_resolution(
    client: TestClient, engine: Engine, study: StudyTree, path: str
) -> None:
    body = json.dumps({**study.body(), "phase_c_root": path}, ensure_ascii=True)
    headers = {"Content-Type": "application/json"}
    detail = _refused(client, engine, "POST", "/runs", 422, content=body, headers=headers)
    assert detail["detail"][0]["loc"] == ["body", "phase_c_root"], detail


def test_a_huge_extra_field_is_not_echoed(
    client: TestClient, engine: Engine, study: StudyTree
) -> None:
    body = {**study.body(), "x" * 100: "y" * 900_000}
    detail = _refused(client, engine, "POST", "/runs", 422, json=body)
    assert "Extra inputs" in detail["detail"][0]["msg"]


def test_a_body_over_the_limit_is_413(client: TestClient, engine: Engine) -> None:
    body = b'{"phase_c_root": "' + b"a" * (50 << 20) + b'"}'
    headers = {"Content-Type": "application/json"}
    _refused(client, engine, "POST", "/runs", 413, content=body, headers=headers)


def test_a_streamed_body_over_the_limit_is_413(client: TestClient, engine: Engine) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"phase_c_root": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'"}'

    headers = {"Content-Type": "application/json"}
    _refused(client, engine, "POST", "/runs", 413, content=chunks(), headers=headers)


@pytest.mark.parametrize("job_id", ["0", "-1", str(2**63), str(2**64), "1e3", "9" * 5000])
def test_out_of_range_ids_are_422(client: TestClient, engine: Engine, job_id: str) -> None:
    for url in (f"/jobs/{job_id}", f"/runs/{job_id}", f"/manifests/{job_id}"):
        _refused(client, engine, "GET", url, 422)
    _refused(client, engine, "POST", f"/jobs/{job_id}/cancel", 422)


@pytest.mark.parametrize("job_id", [str(2**63 - 1), "99"])
def test_ids_in_range_but_unknown_are_404(client: TestClient, engine: Engine, job_id: str) -> None:
    detail = _refused(client, engine, "GET", f"/jobs/{job_id}", 404)
    assert detail == {"detail": f"job {job_id} not found"}
    _refused(client, engine, "POST", f"/runs/{job_id}/retry", 404)


@pytest.mark.parametrize("offset", [str(2**63), "-1", "nan"])
def test_bad_query_numbers_are_422(client: TestClient, engine: Engine, offset: str) -> None:
    _refused(client, engine, "GET", "/runs", 422, params={"offset": offset})


def test_malformed_json_is_a_4xx(client: TestClient, engine: Engine) -> None:
    headers = {"Content-Type": "application/json"}
    for body in (b"{", b"\xff\xfe", b'{"a": "\\ud800"}'):
        _refused(client, engine, "POST", "/runs", 422, content=body, headers=headers)
    nested = b"[" * 100_000  # deeper than the JSON parser goes: refused like bad JSON
    detail = _refused(client, engine, "POST", "/runs", 422, content=nested, headers=headers)
    assert detail["detail"][0]["loc"] == ["body"]


def test_the_history_of_a_huge_log_is_read_in_bounded_memory(
    client: TestClient, study: StudyTree
) -> None:
    created = client.post("/runs", json=study.body(dry_run=True, filters={"dose": 1000.0}))
    job = client.get(f"/runs/{created.json()['id']}/jobs").json()["data"][0]
    log = Path(job["log_path"])
    with log.open("w") as handle:
        handle.write("2026-01-01T00:00:00Z epoch 1/3 train_loss=0.5\n")
        handle.write("2026-01-01T00:00:00Z epoch 2/3 train_loss=0.25\n")
    with log.open("r+b") as handle:  # then 1 GiB of NULs without a newline (sparse)
        handle.truncate(log.stat().st_size + (1 << 30))
    with log.open("ab") as handle:
        handle.write(b"\n2026-01-01T00:00:00Z epoch 3/3 train_loss=0.125\n")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    history = client.get(f"/jobs/{job['id']}/history")

    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert history.status_code == 200, history.text
    assert [point["epoch"] for point in history.json()["data"]] == [1, 2, 3]
    assert grew_kib < 64 << 10  # a whole read would take 1 GiB and more


def test_a_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.options("/runs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    "field", [("training", "probe_trainable"), ("reconstruction", "probe_trainable"),
              ("execution", "deterministic"), (None, "dry_run")],
)  # fmt: skip
def test_a_number_is_not_taken_for_a_boolean(
    client: TestClient, engine: Engine, study: StudyTree, field: tuple[str | None, str]
) -> None:
    group, name = field
    body = study.body(**({name: 0} if group is None else {group: {name: 0}}))
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "bool_type"
    assert row_counts(engine)["run"] == 0
