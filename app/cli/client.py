"""A small httpx client for the ptychojobs API, used by the CLI and the demo."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

NEXT_OFFSET_HEADER = "X-Log-Next-Offset"
ACTIVE_RUN_STATUSES = frozenset({"queued", "running"})


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

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

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

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
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
            except (httpx.TransportError, ApiError) as exc:
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
        response = self._http.get(f"/jobs/{job_id}/log", params={"offset": offset})
        if response.is_error:
            raise ApiError(response.status_code, response.text)
        return response.text, int(response.headers[NEXT_OFFSET_HEADER])

    def manifest(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/manifests/{run_id}"))

    def manifest_url(self, run_id: int) -> str:
        return f"{self.base_url}/manifests/{run_id}"

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/runs/{run_id}/cancel"))

    def wait_for_run(self, run_id: int, *, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll until the run leaves queued/running; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (run := self.run(run_id))["status"] in ACTIVE_RUN_STATUSES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s}s")
            time.sleep(poll_s)
        return run
