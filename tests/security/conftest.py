"""Security fixtures: an app that requires tokens, a token, and counts of stored rows."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from app import auth
from app.core.config import Settings
from app.main import create_app
from tests.api.conftest import TEST_HOSTS, StudyTree, make_study_tree

TABLES = ("run", "job", "skipevent", "attempt", "api_token")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data root, with a file no request may read or write."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "train.log").write_text("SECRET outside the data root\n")
    return folder


@pytest.fixture
def study(data_root: Path) -> StudyTree:
    return make_study_tree(data_root)


def secure_settings(tmp_path: Path, data_root: Path, **extra: object) -> Settings:
    """Tokens required (auth on), the test client's host trusted."""
    values: dict[str, object] = {
        "data_root": data_root,
        "database_url": f"sqlite:///{tmp_path / 'secure.db'}",
        "trusted_hosts": TEST_HOSTS,
        "auth": "on",
        **extra,
    }
    return Settings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path, data_root: Path) -> Settings:
    return secure_settings(tmp_path, data_root)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The app (migrated by its lifespan), no credentials."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def engine(app_client: TestClient) -> Engine:
    found: Engine = app_client.app.state.engine  # type: ignore[attr-defined]
    return found


@pytest.fixture
def token(engine: Engine) -> str:
    """The secret of a live token called `alice`."""
    with Session(engine) as session:
        return auth.create_token(session=session, name="alice").secret


@pytest.fixture
def client(app_client: TestClient, token: str) -> TestClient:
    """The same client, sending alice's token."""
    app_client.headers["Authorization"] = f"Bearer {token}"
    return app_client


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table: what a refused request must leave unchanged."""
    with engine.connect() as connection:
        return {
            t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES
        }
