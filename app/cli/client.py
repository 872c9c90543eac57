"""A small httpx client for the ptychojobs API, used by the CLI and the demo."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from app.core.config import Settings

NEXT_OFFSET_HEADER = "X-Log-Next-Offset"
ACTIVE_RUN_STATUSES = frozenset({"queued", "running"})
ACTIVE_JOB_STATUSES = ACTIVE_RUN_STATUSES
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def default_api_url(settings: Settings) -> str:
    """Where the CLI finds the API: `api_url` when it is set, else `serve`'s host and port."""
    if "api_url" in settings.model_fields_set:
        return settings.api_url
    host = "127.0.0.1" if settings.host in _ANY_ADDRESS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{settings.port}"


class ApiUnreachable(RuntimeError):
    """No answer from the API's address (nothing listening, wrong host or port, timeout)."""

    def __init__(self, base_url: str, cause: httpx.TransportError) -> None:
        self.base_url = base_url
        reason = _transport_reason(cause)
        super().__init__(f"cannot reach the ptychojobs API at {base_url} ({reason})")


def _transport_reason(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError):
        text = str(error).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "nodename" in text or "resolution" in text:
            return "unknown host"
        return "cannot connect"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return type(error).__name__


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: its name and its JSON data."""

    kind: str
    data: dict[str, Any]


class ApiError(RuntimeError):
    """The API answered with an error status; `detail` is its JSON detail."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"HTTP {status_code}: {_describe(detail)}")


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if isinstance(error, dict):
                loc = ".".join(str(p) for p in error.get("loc", []))
                parts.append(f"{loc}: {error.get('msg')}")
            else:
                parts.append(str(error))
        return "; ".join(parts)
    return str(detail)


class PtychoClient:
    """Synchronous calls to one ptychojobs API."""

    def __init__(self, base_url: str, *, token: str = "", timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def __enter__(self) -> PtychoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, exc) from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.is_error:
            raise ApiError(response.status_code, _detail(response))
        return response.json()

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))

    def wait_until_healthy(self, *, timeout_s: float, poll_s: float = 0.2) -> None:
        """Poll GET /health until it answers 200; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.health()
                return
            except (ApiUnreachable, ApiError) as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.base_url} not healthy after {timeout_s}s") from exc
            time.sleep(poll_s)

    def submit_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", "/runs", json=body))

    def run(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/runs/{run_id}"))

    def jobs(self, run_id: int) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/runs/{run_id}/jobs")["data"])

    def skips(self, run_id: int) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/runs/{run_id}/skips")["data"])

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/jobs/{job_id}"))

    def job_log(self, job_id: int, *, offset: int = 0) -> tuple[str, int]:
        """Log text from byte `offset`, and the offset to ask for next."""
        response = self._request("GET", f"/jobs/{job_id}/log", params={"offset": offset})
        if response.is_error:
            raise ApiError(response.status_code, response.text)
        return response.text, int(response.headers[NEXT_OFFSET_HEADER])

    def manifest(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/manifests/{run_id}"))

    def manifest_url(self, run_id: int) -> str:
        return f"{self.base_url}/manifests/{run_id}"

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/runs/{run_id}/cancel"))

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/jobs/{job_id}/cancel"))

    def retry_run(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/runs/{run_id}/retry"))

    def retry_job(self, job_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/jobs/{job_id}/retry"))

    def runs(self, *, limit: int = 50, status: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return dict(self._json("GET", "/runs", params=params))

    def progress(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/runs/{run_id}/progress"))

    def report(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/runs/{run_id}/report"))

    def report_csv(self, run_id: int) -> str:
        response = self._request("GET", f"/runs/{run_id}/report", params={"format": "csv"})
        if response.is_error:
            raise ApiError(response.status_code, response.text)
        return response.text

    def report_figure(self, run_id: int) -> bytes:
        response = self._request("GET", f"/runs/{run_id}/report/figure.png")
        if response.is_error:
            raise ApiError(response.status_code, response.text)
        return response.content

    def run_events(self, run_id: int, *, poll_s: float | None = None) -> Iterator[ServerEvent]:
        """The run's server-sent events until the server ends the stream (after `end`)."""
        params = {"poll_s": poll_s} if poll_s else {}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            with self._http.stream(
                "GET", f"/runs/{run_id}/events", params=params, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(response.status_code, _detail(response))
                yield from _parse_events(response.iter_lines())
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, exc) from exc

    def wait_for_run(self, run_id: int, *, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the run leaves queued/running; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (run := self.run(run_id))["status"] in ACTIVE_RUN_STATUSES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s}s")
            time.sleep(poll_s)
        return run


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return body.get("detail", body) if isinstance(body, dict) else body


def _parse_events(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """SSE framing: `event:` and `data:` lines, a blank line ends an event; comments skipped."""
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield ServerEvent(kind=kind, data=json.loads(data))
            kind, data = "message", ""
        elif not line:
            kind = "message"
