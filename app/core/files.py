"""File conventions shared by the service, the study tools and the workers.

JSON documents that readers may open at any moment (manifests, results, summaries) are
written atomically: to a temporary file beside the target, fsynced, renamed over it, and
the directory fsynced, so a reader sees the old or the new file whole, even after a crash.
Times are UTC ISO-8601 with a trailing `Z`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, document: Any) -> None:
    """Write `document` as strict JSON (no NaN) to `path`, atomically and durably."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def isoformat_z(moment: datetime | None, *, timespec: str = "milliseconds") -> str | None:
    """UTC ISO-8601 with a trailing Z; naive datetimes are taken as UTC (as stored)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec=timespec) + "Z"


def finite_tree(value: Any) -> Any:
    """A copy of nested dicts/lists with NaN and infinities as None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {key: finite_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_tree(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def as_utc(moment: datetime) -> datetime:
    """An aware datetime: the database hands back naive UTC ones (SQLite keeps no zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def log_timestamp() -> str:
    """Now, as train.log's lines begin: UTC to the second, with a trailing Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_timestamp() -> str:
    """Now, as UTC ISO-8601 with a trailing Z."""
    stamp = isoformat_z(datetime.now(UTC))
    assert stamp is not None
    return stamp
