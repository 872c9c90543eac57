"""The domain's errors, one family; `app.api.errors` maps each kind to HTTP in one place.

Code below the API raises these and never an HTTP exception: a worker, the CLI and the
service see the same errors, and only the API decides what they mean on the wire.
"""

from __future__ import annotations

from typing import Any


class PtychojobsError(Exception):
    """Base of every error the domain raises on purpose."""


class NotFound(PtychojobsError, LookupError):
    """An id or name that names nothing: `entity` says what was looked for (run, job, …)."""

    def __init__(self, entity: str, key: object, message: str | None = None) -> None:
        self.entity = entity
        self.key = key
        super().__init__(message or f"{entity} {key} not found")


class RequestInvalid(PtychojobsError, ValueError):
    """A request that passed schema validation but not the domain's checks.

    `errors` has pydantic's shape, `{"loc": [...], "msg": ..., "type": ...}`, so clients
    read every 422 the same way.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))

    @classmethod
    def at(cls, loc: list[str | int], msg: str, kind: str) -> RequestInvalid:
        """One error at `loc` (e.g. ["body", "artifact_root"])."""
        return cls([{"loc": loc, "msg": msg, "type": kind}])


class Conflict(PtychojobsError):
    """The request contradicts the current state of what it names."""


class InvalidTransition(Conflict):
    """A job's status does not allow the requested change."""


class Unauthorized(PtychojobsError):
    """No credentials, or credentials that name no live token."""


class PathRefused(PtychojobsError, OSError):
    """A stored path that may not be opened: it leaves its root, or goes through a symlink.

    Raised when a path is used (a log read, a manifest write, a job's data), so callers that
    handle an unwritable or unreadable file (`except OSError`) handle this one too.
    """

    def __init__(self, path: str, root: str, why: str) -> None:
        self.path = path
        self.root = root
        self.why = why
        super().__init__(f"{path!r} {why} (root {root!r})")
