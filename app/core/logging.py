"""Logging setup: one format for API, workers and CLI, with run and job ids when known."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s [run=%(run_id)s job=%(job_id)s] %(message)s"


class _ContextDefaults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key in ("run_id", "job_id"):
            if not hasattr(record, key):
                setattr(record, key, "-")
        return True


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the moment of the record.

    A handler bound to the stream of its day breaks once that stream is closed or replaced
    (a CLI invoked in-process by a test runner, a daemonised process).
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """Install the project's handler on the root logger once."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(_ContextDefaults())
        root.addHandler(handler)
    root.setLevel(level)
