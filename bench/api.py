"""API throughput: POST /runs of a 1,000-dose design and GET /manifests/{id}, beside a baseline.

Both servers are real uvicorn processes on 127.0.0.1, driven by one httpx client with
keep-alive, one request at a time. The baseline is a minimal FastAPI app whose endpoints
return a constant JSON document of the same size as ours (our own response, captured first),
so the ratio isolates what the service does beyond HTTP and JSON encoding.

    .venv/bin/python bench/api.py [--quick] [--doses 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, stop_process
from app.study.design import dose_dirname


def make_placeholder_study(root: Path, doses: list[float]) -> tuple[Path, Path]:
    """Empty files where the study's NPZ files would be: enumeration checks existence only."""
    phase_c, phase_d = root / "phase_c", root / "phase_d"
    for dose in doses:
        c_dir = phase_c / dose_dirname(dose)
        c_dir.mkdir(parents=True)
        for split in ("train", "test"):
            (c_dir / f"patched_{split}.npz").touch()
        for view in ("dense", "sparse"):
            d_dir = phase_d / dose_dirname(dose) / view
            d_dir.mkdir(parents=True)
            for split in ("train", "test"):
                (d_dir / f"{view}_{split}.npz").touch()
    return phase_c, phase_d


def serve_baseline(documents_path: Path, port: int) -> None:
    """The baseline server: constant documents of the measured sizes, nothing else."""
    import uvicorn
    from fastapi import FastAPI

    documents = json.loads(documents_path.read_text())
    app = FastAPI()

    @app.post("/runs", status_code=201)
    def create() -> dict[str, Any]:
        return dict(documents["post"])

    @app.get("/manifests/{run_id}")
    def manifest(run_id: int) -> dict[str, Any]:
        return dict(documents["manifest"])

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def timed(call: Callable[[], httpx.Response], repeats: int) -> tuple[float, int]:
    """Requests per second over `repeats` sequential calls, and the response size in bytes."""
    durations, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = call()
        durations.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(response.content)
    return 1.0 / statistics.mean(durations), size


def measure_ours(work: Path, doses: list[float], repeats: dict[str, int]) -> dict[str, Any]:
    phase_c, phase_d = make_placeholder_study(work / "data" / "study", doses)
    body = {
        "phase_c_root": str(phase_c),
        "phase_d_root": str(phase_d),
        "design": {"doses": doses},
    }
    port = free_port()
    env = service_env(data_root=work / "data", database_url=f"sqlite:///{work / 'bench.db'}")
    env["PTYCHOJOBS_LOG_LEVEL"] = "WARNING"
    with (work / "api.log").open("wb") as log:
        server = start_api(host="127.0.0.1", port=port, env=env, output=log)
        try:
            with PtychoClient(f"http://127.0.0.1:{port}", timeout_s=300) as client:
                try:
                    client.wait_until_healthy(timeout_s=60)
                except TimeoutError:
                    print((work / "api.log").read_text()[-3000:], file=sys.stderr)
                    raise
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
                post_rps, post_size = timed(lambda: http.post("/runs", json=body), repeats["post"])
                post_doc = http.post("/runs", json=body).json()
                run_id = post_doc["id"]
                get_rps, get_size = timed(lambda: http.get(f"/manifests/{run_id}"), repeats["get"])
                manifest_doc = http.get(f"/manifests/{run_id}").json()
        finally:
            stop_process(server, grace_s=10)
    jobs = len(post_doc["jobs"])
    return {
        "post": (post_rps, post_size, post_doc),
        "get": (get_rps, get_size, manifest_doc),
        "jobs": jobs,
    }


def measure_baseline(work: Path, ours: dict[str, Any], repeats: dict[str, int]) -> dict[str, Any]:
    documents = work / "documents.json"
    documents.write_text(json.dumps({"post": ours["post"][2], "manifest": ours["get"][2]}))
    port = free_port()
    argv = [sys.executable, __file__, "--serve-baseline", str(documents), "--port", str(port)]
    server = subprocess.Popen(argv)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/manifests/1").raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            post = timed(lambda: http.post("/runs", json={}), repeats["post"])
            get = timed(lambda: http.get("/manifests/1"), repeats["get"])
    finally:
        stop_process(server, grace_s=10)
    return {"post": post, "get": get}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--doses", type=int, default=1000, help="doses in the design (×3 jobs)")
    parser.add_argument("--serve-baseline", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.port)
        return
    repeats = {"post": 3, "get": 10} if args.quick else {"post": 10, "get": 40}
    doses = [float(1000 + i) for i in range(args.doses)]
    with tempfile.TemporaryDirectory(prefix="ptychojobs-bench-") as tmp:
        ours = measure_ours(Path(tmp), doses, repeats)
        base = measure_baseline(Path(tmp), ours, repeats)
    print(f"API throughput: uvicorn + httpx, sequential requests, {ours['jobs']} jobs per run")
    print(f"{'request':<22}{'bytes':>11}{'ours req/s':>12}{'baseline req/s':>16}{'ratio':>8}")
    for key, label in (("post", "POST /runs"), ("get", "GET /manifests/{id}")):
        rps, size, _ = ours[key]
        base_rps = base[key][0]
        print(f"{label:<22}{size:>11,}{rps:>12.2f}{base_rps:>16.2f}{rps / base_rps:>8.2f}")


if __name__ == "__main__":
    main()
