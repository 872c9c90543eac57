"""Logging setup: one format for API, workers and CLI, with run and job ids when known."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s [run=%(run_id)s job=%(job_id)s] %(message)s"


class _ContextDefaults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key in ("run_id", "job_id"):
            if not hasattr(record, key):
                setattr(record, key, "-")
        return True


def configure_logging(level: str = "INFO") -> None:
    """Install the project's handler on the root logger once."""
    root = logging.getLogger()
    if any(getattr(h, "_ptychojobs", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ContextDefaults())
    handler._ptychojobs = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
