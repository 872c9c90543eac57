"""The iterative engine's jobs: pty-chi reconstructions of one split, scored like training's.

`ReconstructConfig` imports without torch or pty-chi; `reconstruct` loads them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.options import ALGORITHMS, ENGINES
from worker.reconstruction.config import ReconstructConfig

if TYPE_CHECKING:
    from worker.reconstruction.runner import reconstruct

__all__ = ["ALGORITHMS", "ENGINES", "ReconstructConfig", "reconstruct"]


def __getattr__(name: str) -> Any:
    if name == "reconstruct":
        from worker.reconstruction.runner import reconstruct

        return reconstruct
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
