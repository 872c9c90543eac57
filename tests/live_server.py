"""The app served by uvicorn in a thread, for clients that need a real socket (SSE, browsers).

Test modules that talk to a live API import the fixtures below by name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine

from app.cli.processes import free_port
from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from tests.api.conftest import StudyTree, make_study_tree


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[str]:
    """Serve `create_app(settings)` on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A data root and a SQLite database of the test's own."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    return Settings(data_root=data_root, database_url=f"sqlite:///{tmp_path / 'api.db'}")


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The API on a free loopback port; its base URL."""
    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture
def engine(settings: Settings, server: str) -> Iterator[Engine]:
    """The served API's database (migrated by the server's start)."""
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def study(settings: Settings) -> StudyTree:
    """A small study tree under the data root."""
    return make_study_tree(settings.data_root)
