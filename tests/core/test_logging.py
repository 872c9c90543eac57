"""The project's log handler follows sys.stderr, so a replaced stream never breaks it."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from app.core.logging import configure_logging


def test_records_go_to_the_current_stderr_even_after_the_old_one_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    first.close()  # e.g. a test runner's captured stream, gone after the command returned
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    configure_logging("INFO")  # idempotent: still one handler

    logging.getLogger("ptychojobs.test").info("hello %s", "there", extra={"run_id": 7})

    assert "INFO ptychojobs.test [run=7 job=-] hello there" in second.getvalue()
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_StderrHandler"]
    assert len(ours) == 1
