"""The training engine: the PtychoPINN network trained with Lightning, and its evaluation.

`TrainConfig` and `ProgressReporter` import without torch; `train` loads torch and Lightning
on first use, so importing this package stays fast and free of side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.training.config import ProgressReporter, TrainConfig

if TYPE_CHECKING:
    from worker.training.runner import train

__all__ = ["ProgressReporter", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from worker.training.runner import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
