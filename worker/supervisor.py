"""Several worker processes under one parent: signals forwarded, crashed workers restarted."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import dataclass, field

from app.core.launch import worker_argv
from worker.executors.forkserver import die_with_parent
from worker.signals import StopSignal

logger = logging.getLogger(__name__)

_POLL_S = 0.2
_MAX_BACKOFF_S = 30.0


@dataclass
class _Slot:
    """One worker process to keep alive: a GPU id, or None for a CPU worker."""

    gpu: str | None
    once: bool
    process: subprocess.Popen[bytes] | None = None
    done: bool = False
    exit_code: int = 0
    backoff_s: float = 1.0
    restart_at: float = field(default=0.0)

    def argv(self) -> list[str]:
        return worker_argv(gpus=self.gpu, once=self.once)

    def start(self) -> None:
        # Own process group, so a terminal's Ctrl-C reaches the supervisor only and each
        # worker gets one clean SIGTERM; and a worker stops when the supervisor is killed.
        self.process = subprocess.Popen(
            self.argv(), process_group=0, preexec_fn=lambda: die_with_parent(signal.SIGTERM)
        )
        logger.info("started worker pid %d (gpu %s)", self.process.pid, self.gpu)


def supervise(gpus: list[str | None], *, once: bool, stop: StopSignal) -> int:
    """Run one worker per entry of `gpus` until stopped (or, with `once`, all are done)."""
    slots = [_Slot(gpu=gpu, once=once) for gpu in gpus]
    for slot in slots:
        slot.start()
    forwarded = 0
    while not all(slot.done for slot in slots):
        if stop.count > forwarded:
            forwarded = stop.count
            _forward(slots)
        for slot in slots:
            _check(slot, stopping=bool(stop.count))
        stop.event.wait(_POLL_S)
        stop.event.clear()
    return max(slot.exit_code for slot in slots)


def _forward(slots: list[_Slot]) -> None:
    for slot in slots:
        if slot.process is not None and slot.process.poll() is None:
            slot.process.send_signal(signal.SIGTERM)


def _check(slot: _Slot, *, stopping: bool) -> None:
    if slot.done:
        return
    if slot.process is None:  # waiting to restart
        if stopping:
            slot.done = True
        elif time.monotonic() >= slot.restart_at:
            slot.start()
        return
    code = slot.process.poll()
    if code is None:
        return
    if code == 0 or stopping:
        slot.done, slot.exit_code = True, 0 if stopping else code
        return
    logger.error("worker pid %d exited with %d; restarting", slot.process.pid, code)
    slot.process = None
    slot.restart_at = time.monotonic() + slot.backoff_s
    slot.backoff_s = min(slot.backoff_s * 2, _MAX_BACKOFF_S)
