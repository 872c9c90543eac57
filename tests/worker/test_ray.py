"""The Ray executor on a local Ray cluster (`ray start --head`) that the tests start and stop."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.processes import free_port
from tests.worker.cluster_study import (
    assert_failed_at_once,
    assert_study_succeeded,
    kill_first_checkpointed,
    study_services,
    submit_demo_study,
)

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Ray cluster with 2 CPUs and no GPU; its processes end with the module."""
    if not Path(RAY).exists():
        pytest.skip("ray is not installed (pip install ptychojobs[ray])")
    port = free_port()
    # Ray's socket paths must stay short: a temp dir under /tmp, not pytest's deep one.
    temp_dir = Path(f"/tmp/ray-{os.getpid()}")
    log_path = tmp_path_factory.mktemp("ray") / "ray.log"
    argv = [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"]
    argv += ["--num-cpus=2", "--num-gpus=0", "--include-dashboard=false"]
    argv += [f"--temp-dir={temp_dir}", "--object-store-memory=100000000"]
    argv += ["--disable-usage-stats"]
    with log_path.open("wb") as log:
        # Its own process group: the cluster's processes are ended together, by group id.
        head = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log_path.read_text():
            assert head.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # Ray drains, then stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_demo_study_runs_through_ray_and_a_killed_worker_is_recovered(
    ray_address: str, tmp_path: Path
) -> None:
    settings = {"executor": "ray", "ray_address": ray_address, "heartbeat_s": "2"}
    with study_services(tmp_path, workers=2, **settings) as services:
        run = submit_demo_study(services, cluster={"gpus": 0, "cpus": 1})

        def kill_ray_worker(task_file: Path) -> None:
            os.kill(json.loads(task_file.read_text())["pid"], signal.SIGKILL)

        started = time.monotonic()
        killed = kill_first_checkpointed(run, "ray/attempt-1/task.json", kill_ray_worker)
        assert_study_succeeded(
            services, run, killed, "ray", "the Ray worker process running the task died"
        )
        print(f"Ray study: {time.monotonic() - started:.0f} s")


def test_a_broken_data_file_fails_the_ray_job_at_once(ray_address: str, tmp_path: Path) -> None:
    settings = {"executor": "ray", "ray_address": ray_address, "heartbeat_s": "2"}
    with study_services(tmp_path, workers=1, **settings) as services:
        cluster = {"gpus": 0, "cpus": 1}
        run = submit_demo_study(services, cluster=cluster, view="baseline", break_baseline=True)
        assert_failed_at_once(services, run, "ray")
