"""`ptychojobs demo` in a pipe: progress lines arrive while the run trains (real worker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_piped_demo_prints_progress_as_it_goes(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "app.cli", "demo", "--out", str(tmp_path / "demo")]
    argv += ["--epochs", "1", "--n-groups", "16", "--positions", "120", "--timeout-s", "400"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTYCHOJOBS_")}
    started = time.monotonic()
    seen: list[tuple[float, str]] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path
    ) as demo:
        assert demo.stdout is not None
        try:
            for line in demo.stdout:
                seen.append((time.monotonic() - started, line.rstrip("\n")))
            demo.wait(timeout=30)
        finally:
            demo.kill()
    text = "\n".join(line for _, line in seen)
    (tmp_path / "demo-output.txt").write_text(text)
    assert demo.returncode == 0, text
    ended_s = seen[-1][0]
    snapshot_s = next(at for at, line in seen if line.startswith("run 1: queued"))
    assert ended_s - snapshot_s > 1.0, text  # lines came while the run trained, not at exit
    assert "job 1 dose 1000 baseline gs1: running" in text
    assert "job 2 dose 1000 dense gs2: succeeded, epoch 1/1" in text
    assert "run 1: succeeded (6 succeeded)" in text
    running = [line for line in text.splitlines() if line.startswith("run 1: running")]
    assert len(running) <= 2 * 6  # a line per change of the run's counts, not per heartbeat
    assert "dashboard http://127.0.0.1:" in text
