"""The project's log handler follows sys.stderr, so a replaced stream never breaks it; no
log line carries a query-string token."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import httpx
import pytest

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, stop_process
from app.core.logging import RedactTokens, configure_logging, redact_tokens


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


def test_a_token_in_a_query_string_is_redacted_in_the_served_api_s_access_log(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = service_env(
        data_root=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        log_level="INFO",
    )
    secret = "pj_s3cr3t-value"
    log = tmp_path / "api.log"
    with log.open("wb") as output:
        api = start_api(host="127.0.0.1", port=port, env=env, output=output)
        try:
            with PtychoClient(f"http://127.0.0.1:{port}") as client:
                client.wait_until_healthy(timeout_s=60)
                for path in (f"/health?token={secret}", f"/ui/?view=1&token={secret}#x"):
                    httpx.get(f"http://127.0.0.1:{port}{path}")
        finally:
            stop_process(api, grace_s=10)
    text = log.read_text()
    assert "GET /health?token=[redacted] HTTP/1.1" in text
    assert "GET /ui/?view=1&token=[redacted] HTTP/1.1" in text
    assert secret not in text


def test_redaction_covers_messages_and_arguments_and_leaves_the_rest() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s %s", ("a", "/x?a=1&TOKEN=abc&b=2"), None
    )
    RedactTokens().filter(record)
    assert record.getMessage() == "a /x?a=1&TOKEN=[redacted]&b=2"
    assert redact_tokens("see /ui/?token=abc;token=def") == (
        "see /ui/?token=[redacted];token=[redacted]"
    )
    assert redact_tokens("a tokens=abc x?mytoken=1") == "a tokens=abc x?mytoken=1"
