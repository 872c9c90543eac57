"""`ptychojobs demo`: a small study end to end on SQLite, with a local API and worker.

Progress comes from the run's server-sent events (`app.cli.watch`): bars on a terminal,
one line per change in a pipe. With `keep` the API and worker stay up after the summary,
for the dashboard; with `use_settings` the run goes into the database `serve` uses.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, start_worker, stop_process
from app.cli.tables import comparison_table, skips_table, summary_table, verdict_note
from app.cli.watch import follow_run
from app.core.config import Settings
from app.study.demo_data import DEMO_DESIGN, make_demo_data

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Progress reaches the database with each heartbeat: often enough to watch a short job.
DEMO_HEARTBEAT_S = 2.0


@dataclass(frozen=True)
class DemoOptions:
    """What the demo makes and how hard it trains."""

    out: Path
    # Our U-Net fed the back-projection as well as the amplitudes (the service's defaults),
    # not the study's ptychopinn network: within the demo's budget (measured on two CPU
    # cores: 2 epochs, about 16 s a job) it learns on the baseline view at dose 1e5 (phase
    # correlation 0.70, phase MAE 0.71 x the flat object's), where ptychopinn needs tens of
    # epochs (bench/learning.py measures it).
    epochs: int = 2
    n_groups: int = 128
    batch_size: int = 4
    lr: float = 3e-3
    architecture: str = "unet"
    inputs: str = "amplitudes+backprop"
    # The default demo study (app.study.demo_data): dense views kept, sparse rejected.
    n_positions: int = 1000
    object_size: int | None = None
    # pty-chi reconstructions of each test split (the run body's `reconstruction`), or none.
    reconstruction: dict[str, Any] | None = None
    timeout_s: float = 1800.0
    keep: bool = False  # leave API and worker running after the summary, until Ctrl-C
    # The data root and database `serve` uses, instead of `out` and a fresh out/demo.db.
    data_root: Path | None = None
    database_url: str | None = None


def demo_body(
    phase_c: Path, phase_d: Path, artifact_root: Path, options: DemoOptions
) -> dict[str, Any]:
    """The POST /runs body of the demo run: the whole design, small training, on the CPU."""
    return {
        "phase_c_root": str(phase_c),
        "phase_d_root": str(phase_d),
        "artifact_root": str(artifact_root),
        # The demo's overlap fractions (the dense view's discs overlap as the study means).
        "design": DEMO_DESIGN.model_dump(mode="json"),
        "training": {
            "epochs": options.epochs,
            "n_groups": options.n_groups,
            "batch_size": options.batch_size,
            "lr": options.lr,
            "architecture": options.architecture,
            "inputs": options.inputs,
            # Two epochs on a few validation samples: nothing for early stopping to judge.
            "early_stop_patience": 0,
        },
        "execution": {"accelerator": "cpu", "logger": "csv"},
        # The comparison is scored on the test split: the train split's are not needed here.
        **(
            {"reconstruction": {"splits": ["test"], **options.reconstruction}}
            if options.reconstruction is not None
            else {}
        ),
    }


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_demo(options: DemoOptions, console: Console) -> int:
    """Make the study, start API and worker, run it, print the summary; 0 when it succeeded.

    SIGTERM ends it like Ctrl-C, and Ctrl-C works even where a shell started the demo with
    SIGINT ignored (background jobs): either way API and worker are stopped, not orphaned.
    """
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run_demo(options, console)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_demo(options: DemoOptions, console: Console) -> int:
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console.rule("ptychojobs demo")
    started = time.monotonic()
    phase_c, phase_d = make_demo_data(
        out / "study", n_positions=options.n_positions, object_size=options.object_size
    )
    console.print(f"demo study: {phase_c}, {phase_d} ({time.monotonic() - started:.1f} s)")
    database_url = options.database_url or _fresh_database(out / "demo.db")
    data_root = options.data_root or out
    port = free_port(HOST)
    env = service_env(
        data_root=data_root,
        database_url=database_url,
        api_url=f"http://{HOST}:{port}",
        port=str(port),
        heartbeat_s=str(DEMO_HEARTBEAT_S),
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    body = demo_body(phase_c, phase_d, out / "artifacts" / stamp, options)
    with ExitStack() as stack:
        logs = out / "logs"
        logs.mkdir(exist_ok=True)
        api_log = stack.enter_context((logs / "api.log").open("ab"))
        worker_log = stack.enter_context((logs / "worker.log").open("ab"))
        console.print(
            f"API on http://{HOST}:{port} (log {logs / 'api.log'}), database {database_url}"
        )
        client = stack.enter_context(PtychoClient(f"http://{HOST}:{port}"))
        _start_services(stack, client, env, port, api_log, worker_log)
        console.print(f"worker started (log {logs / 'worker.log'})")
        code = _submit_and_follow(client, body, options, console)
        if options.keep:
            _keep_running(client, console)
        return code


def _fresh_database(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)  # a fresh database every time
    return f"sqlite:///{path}"


def _keep_running(client: PtychoClient, console: Console) -> None:
    console.print(
        f"API and worker stay up: dashboard {client.base_url}/ui/, API docs "
        f"{client.base_url}/docs; Ctrl-C stops them"
    )
    console.file.flush()
    with suppress(KeyboardInterrupt):  # then the caller's ExitStack stops API and worker
        threading.Event().wait()
    console.print("stopping the API and the worker")


def _start_services(
    stack: ExitStack,
    client: PtychoClient,
    env: dict[str, str],
    port: int,
    api_log: IO[bytes],
    worker_log: IO[bytes],
) -> None:
    grace_s = Settings().shutdown_grace_s + 5
    api = start_api(host=HOST, port=port, env=env, output=api_log)
    stack.callback(stop_process, api, grace_s=10)
    client.wait_until_healthy(timeout_s=60)
    worker = start_worker(env=env, output=worker_log)
    stack.callback(stop_process, worker, grace_s=grace_s)


def _submit_and_follow(
    client: PtychoClient, body: dict[str, Any], options: DemoOptions, console: Console
) -> int:
    run = client.submit_run(body)
    run_id = run["id"]
    console.print(
        f"run {run_id}: {run['job_count']} jobs, {run['skipped_count']} skipped view(s), "
        f"{options.epochs} epochs, {options.n_groups} groups; "
        f"dashboard {client.base_url}/ui/runs/{run_id}"
    )
    console.print(
        f"network: {options.architecture}, inputs {options.inputs} (the demo's choice: it "
        "learns within this budget; the study's ptychopinn network needs tens of "
        "epochs, see bench/learning.py)",
        highlight=False,
    )
    console.file.flush()
    started = time.monotonic()
    status = _follow(client, run_id, options, console)
    manifest = client.manifest(run_id)
    console.print(summary_table(manifest))
    note = verdict_note(manifest)
    if note is not None:
        console.print(note, highlight=False)
    console.print(skips_table(manifest["skipped_views"]))
    if manifest.get("reconstruction_jobs"):  # the three-way comparison: networks, pty-chi, flat
        console.print(comparison_table(manifest))
    console.print(f"manifest: {Path(manifest['artifact_root']) / 'training_manifest.json'}")
    console.print(f"manifest URL (while the API runs): {client.manifest_url(run_id)}")
    console.print(f"report: {client.base_url}/runs/{run_id}/report (?format=csv)")
    console.print(f"run {run_id} {status} in {time.monotonic() - started:.0f} s")
    return 0 if status == "succeeded" else 1


def _follow(client: PtychoClient, run_id: int, options: DemoOptions, console: Console) -> str:
    """Follow the run's events; past the timeout, cancel it (the stream then ends)."""

    def cancel_when_late() -> None:
        if not done.wait(options.timeout_s):
            timed_out.set()
            with PtychoClient(client.base_url) as canceller:
                canceller.cancel_run(run_id)

    done, timed_out = threading.Event(), threading.Event()
    watchdog = threading.Thread(target=cancel_when_late, name="demo-timeout", daemon=True)
    watchdog.start()
    try:
        final = follow_run(client, run_id, console)
    finally:
        done.set()
    if timed_out.is_set():
        console.print(f"[red]timed out after {options.timeout_s:.0f} s; cancelled[/red]")
        return "timed_out"
    return str(final["status"])
