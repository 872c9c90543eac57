"""Logging setup: one format for API, workers and CLI, with run and job ids when known."""

from __future__ import annotations

import copy
import logging
import re
import sys
from typing import Any, TextIO

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
        handler.addFilter(RedactTokens())
        root.addHandler(handler)
    root.setLevel(level)


# `token=<value>` in a query string (the dashboard's entry link), and what replaces it.
_TOKEN_IN_QUERY = re.compile(r"([?&;]token=)[^&;#\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_tokens(text: str) -> str:
    """`text` with every `?token=…` / `&token=…` value replaced by `[redacted]`."""
    return _TOKEN_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Redacts query-string tokens from a record's message and its string arguments.

    uvicorn's access log passes the request path, query string included, as an argument;
    a token given as `?token=` would otherwise be written in clear.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with query-string tokens redacted everywhere."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config
