"""The options of one pty-chi reconstruction job (study.md §9, Phase F)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app.options import ALGORITHMS, ENGINES
from worker.training.config import ACCELERATORS

NOISE_MODELS = ("gaussian", "poisson")
LOG_NAME = "train.log"  # the name every job's log has, so the service reads it alike


@dataclass(frozen=True)
class ReconstructConfig:
    """Everything one reconstruction job needs; field names match the run's stored options.

    `noise_model` is LSQML's; the other engines have none and ignore it. `nphotons` (the
    dose) is needed only for a file whose metadata records no intensity scale. `threads`
    None means one torch thread on the CPU and torch's own choice beside a GPU.
    `chunk_epochs` epochs run between two progress reports (and stop checks).
    """

    input_npz: Path
    out_dir: Path
    engine: str = "lsqml"
    epochs: int = 100
    batch_size: int = 96
    noise_model: str = "gaussian"
    probe_trainable: bool = False
    nphotons: float | None = None
    seed: int = 123
    accelerator: str = "auto"
    threads: int | None = None
    chunk_epochs: int = 1
    log_path: Path | None = None
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("input_npz", "out_dir", "log_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        choices = {
            "engine": (self.engine, ENGINES),
            "noise_model": (self.noise_model, NOISE_MODELS),
            "accelerator": (self.accelerator, ACCELERATORS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(
                    f"ReconstructConfig.{name}: expected one of {allowed}, got {value!r}"
                )
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "chunk_epochs": self.chunk_epochs,
            "threads": 1 if self.threads is None else self.threads,
            "nphotons": 1.0 if self.nphotons is None else self.nphotons,
        }
        for name, number in positive.items():
            if not number > 0:
                raise ValueError(
                    f"ReconstructConfig.{name}: expected a positive value, got {number!r}"
                )

    @property
    def algorithm(self) -> str:
        return ALGORITHMS[self.engine]

    @property
    def resolved_log_path(self) -> Path:
        return self.log_path if self.log_path is not None else self.out_dir / LOG_NAME

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy: paths as strings."""
        values = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
