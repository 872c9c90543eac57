"""The study design (study.md §2): doses × views, with the study's defaults."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

View = Literal["baseline", "dense", "sparse"]
VIEWS: tuple[View, ...] = ("baseline", "dense", "sparse")
GRIDSIZE: dict[str, int] = {"baseline": 1, "dense": 2, "sparse": 2}
OVERLAP_VIEWS: tuple[View, ...] = ("dense", "sparse")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds take 32 bits
MAX_DOSE = 1e15  # photons per pattern; far above any real dose
MAX_DOSES = 20_000  # a design's doses (each view of each is a job)
MAX_NEIGHBOR_COUNT = 64


class Seeds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    simulation: int = Field(42, ge=0, le=MAX_SEED)
    grouping: int = Field(123, ge=0, le=MAX_SEED)
    subsampling: int = Field(456, ge=0, le=MAX_SEED)


class StudyDesign(BaseModel):
    """Doses, views and overlap parameters; every field can be overridden per run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    doses: list[float] = Field(
        default_factory=lambda: [1e3, 1e4, 1e5], min_length=1, max_length=MAX_DOSES
    )
    views: list[View] = Field(default_factory=lambda: list(VIEWS), min_length=1, max_length=3)
    overlap_fractions: dict[Annotated[str, Field(max_length=16)], float] = Field(
        default_factory=lambda: {"dense": 0.7, "sparse": 0.2}, max_length=len(OVERLAP_VIEWS)
    )
    neighbor_count: int = Field(7, ge=1, le=MAX_NEIGHBOR_COUNT)
    min_acceptance: float | Literal["geometry"] = 0.10
    seeds: Seeds = Field(default_factory=Seeds)

    @field_validator("doses")
    @classmethod
    def _doses_positive_finite(cls, doses: list[float]) -> list[float]:
        for dose in doses:
            if not math.isfinite(dose) or dose <= 0 or dose > MAX_DOSE:
                raise ValueError(f"dose {dose!r} must be positive, finite and at most {MAX_DOSE:g}")
        if len(set(doses)) != len(doses):
            raise ValueError("doses must not repeat")
        check_dose_dirnames(doses)
        return sorted(doses)

    @field_validator("views")
    @classmethod
    def _views_unique(cls, views: list[View]) -> list[View]:
        if len(set(views)) != len(views):
            raise ValueError("views must not repeat")
        return [v for v in VIEWS if v in views]  # the study's order

    @field_validator("overlap_fractions")
    @classmethod
    def _fractions_in_range(cls, fractions: dict[str, float]) -> dict[str, float]:
        merged = {"dense": 0.7, "sparse": 0.2, **fractions}
        for view, fraction in merged.items():
            if view not in OVERLAP_VIEWS:
                raise ValueError(f"overlap fraction for unknown view {view!r}")
            if not (0.0 <= fraction < 1.0):
                raise ValueError(f"overlap fraction for {view} must be in [0, 1), got {fraction}")
        return merged

    @field_validator("min_acceptance")
    @classmethod
    def _min_acceptance_range(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not (0.0 <= value <= 1.0):
            raise ValueError(f"min_acceptance must be in [0, 1] or 'geometry', got {value}")
        return value

    @model_validator(mode="after")
    def _k_covers_group(self) -> StudyDesign:
        largest = max(GRIDSIZE[v] for v in self.views)
        if self.neighbor_count < largest**2:
            raise ValueError(
                f"neighbor_count {self.neighbor_count} must be >= gridsize² = {largest**2}"
            )
        return self

    def gridsize(self, view: str) -> int:
        return GRIDSIZE[view]

    def spacing_threshold(self, view: str, n: int) -> float:
        """S = (1 − f) · N: the minimum distance between kept positions of an overlap view."""
        return (1.0 - self.overlap_fractions[view]) * n


def dose_dirname(dose: float) -> str:
    """Directory name for a dose: `dose_1000` for 1e3."""
    return f"dose_{int(dose)}"


def check_dose_dirnames(doses: Iterable[float]) -> None:
    """Refuse doses that share a `dose_<int>` folder (their data and artifacts would mix)."""
    by_name: dict[str, list[float]] = {}
    for dose in sorted(float(d) for d in doses):
        by_name.setdefault(dose_dirname(dose), []).append(dose)
    clashes = [
        f"{', '.join(map(str, same))} share the folder {name}"
        for name, same in by_name.items()
        if len(same) > 1
    ]
    if clashes:
        raise ValueError(f"doses must differ in their integer part: {'; '.join(clashes)}")
