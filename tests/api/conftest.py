"""API fixtures: a fresh data root, database and app per test, and small study trees."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

# Starlette 1.x prefers httpx2 for its TestClient and warns once, at import, when it finds
# httpx instead; the client works the same with either.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.study.design import dose_dirname

DOSES = (1e3, 1e4, 1e5)


def write_split(path: Path, *, n: int = 4, size: int = 8) -> None:
    """A small NPZ that satisfies the study's data contract (study.md §3)."""
    rng = np.random.default_rng(0)
    coords = rng.uniform(size / 2, 3 * size, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        diffraction=rng.random((n, size, size), dtype=np.float32),
        xcoords=coords,
        ycoords=coords[::-1].copy(),
        xcoords_start=coords,
        ycoords_start=coords[::-1].copy(),
        scan_index=np.zeros(n, dtype=np.int64),
        probeGuess=np.ones((size, size), dtype=np.complex64),
        objectGuess=np.ones((4 * size, 4 * size), dtype=np.complex64),
    )


@dataclass(frozen=True)
class StudyTree:
    data_root: Path
    phase_c: Path
    phase_d: Path

    def body(self, **extra: object) -> dict[str, object]:
        """A POST /runs body for this tree; paths relative to the data root."""
        return {
            "phase_c_root": str(self.phase_c.relative_to(self.data_root)),
            "phase_d_root": str(self.phase_d.relative_to(self.data_root)),
            **extra,
        }


def make_study_tree(
    data_root: Path,
    *,
    doses: Iterable[float] = DOSES,
    missing: Iterable[tuple[float, str]] = ((1e3, "sparse"),),
    layout: str = "primary",
    prefix: str = "study",
) -> StudyTree:
    """Phase C for every dose; Phase D for every dose and overlap view except `missing`."""
    phase_c, phase_d = data_root / prefix / "phase_c", data_root / prefix / "phase_d"
    absent = set(missing)
    for dose in doses:
        for split in ("train", "test"):
            write_split(phase_c / dose_dirname(dose) / f"patched_{split}.npz")
            for view in ("dense", "sparse"):
                if (dose, view) in absent:
                    continue
                name = f"{view}_{split}.npz" if layout == "primary" else f"{split}.npz"
                write_split(phase_d / dose_dirname(dose) / view / name)
    return StudyTree(data_root=data_root, phase_c=phase_c, phase_d=phase_d)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


# The Host header that TestClient sends: trusted beside the loopback names.
TEST_HOSTS = ["testserver", "localhost", "127.0.0.1"]


@pytest.fixture
def api_settings(tmp_path: Path, data_root: Path) -> Settings:
    """Loopback, so tokens are not required (tests/security covers them)."""
    return Settings(
        data_root=data_root,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        trusted_hosts=TEST_HOSTS,
    )


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """The app on a fresh, migrated SQLite database (the lifespan runs alembic)."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def api_engine(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


@pytest.fixture
def study(data_root: Path) -> StudyTree:
    """The study's acceptance tree: Phase C complete; Phase D lacks sparse at dose 1000."""
    return make_study_tree(data_root)
