"""Client-supplied paths: resolved, and refused unless they lie inside the data root."""

from __future__ import annotations

from pathlib import Path


class PathOutsideDataRoot(ValueError):
    """A client path that resolves outside the configured data root."""

    def __init__(self, field: str, path: str, data_root: Path) -> None:
        self.field = field
        self.path = path
        self.data_root = data_root
        super().__init__(f"{path!r} resolves outside the data root {str(data_root)!r}")


def resolve_inside(raw: str, *, field: str, data_root: Path) -> Path:
    """Resolve `raw` (relative paths are taken from the data root) and require it inside."""
    root = data_root.resolve()
    candidate = Path(raw).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    # resolve() follows symlinks, so a link that points outside is caught here too.
    if not resolved.is_relative_to(root):
        raise PathOutsideDataRoot(field, raw, root)
    return resolved
