"""Follow a ptychojobs run to its end through server-sent events alone (httpx only).

    python examples/follow_run.py http://127.0.0.1:8000 RUN_ID

Prints one line per event; exits 0 when the run succeeded, 1 otherwise.
"""

from __future__ import annotations

import json
import sys

import httpx


def follow(base_url: str, run_id: int) -> str:
    """Read /runs/{run_id}/events until its `end` event; return the run's final status."""
    kind, data = "message", ""
    url = f"{base_url.rstrip('/')}/runs/{run_id}/events"
    with httpx.stream("GET", url, timeout=httpx.Timeout(30.0, read=None)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                event = json.loads(data)
                if kind == "job":
                    epoch = f"epoch {event['epoch']}/{event['epochs_total']}"
                    print(f"job {event['id']} {event['status']} {epoch} loss {event['loss']}")
                else:
                    print(f"{kind}: run {event['id']} {event['status']} {event['counts']}")
                if kind == "end":
                    return str(event["status"])
                kind, data = "message", ""
    raise RuntimeError("the stream closed before the run ended")


if __name__ == "__main__":
    status = follow(sys.argv[1], int(sys.argv[2]))
    sys.exit(0 if status == "succeeded" else 1)
