"""SIGTERM/SIGINT as a stop request the worker and the supervisor poll."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class StopSignal:
    """Counts SIGTERM/SIGINT: the first asks for a graceful stop, the second for a quick one."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at = float("inf")  # monotonic time of the first request
        self.event = threading.Event()

    def install(self) -> StopSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def request(self) -> None:
        if not self.count:
            self.first_at = time.monotonic()
        self.count += 1
        self.event.set()

    def _handle(self, signum: int, _frame: Any) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        self.request()
