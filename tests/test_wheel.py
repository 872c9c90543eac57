"""A wheel installed away from the checkout carries its migrations: `ptychojobs serve` migrates."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from app.core.db import make_engine
from app.migrate import alembic_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# What `pip wheel .` reads from the checkout (packages.find takes only app* and worker*).
BUILD_INPUTS = ("pyproject.toml", "README.md", "app", "worker")


def _run(argv: list[str], **kwargs: object) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


def _build_wheel(tmp_path: Path) -> Path:
    """`pip wheel .` on a copy of the checkout, so no build/ or egg-info lands in the tree."""
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    # No build isolation: the project's setuptools builds it, so the test needs no network.
    pip = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    _run([*pip, "-w", str(dist)], cwd=source)
    (wheel,) = dist.glob("ptychojobs-*.whl")
    return wheel


def _bare_env() -> dict[str, str]:
    """This environment without anything that points Python or the service at the checkout."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {
        k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PTYCHOJOBS_")
    }


@pytest.fixture
def venv_bin(tmp_path: Path) -> Path:
    """A fresh virtualenv holding the wheel; dependencies come from the project's venv."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    wheel = _build_wheel(tmp_path)
    install = ["install", "--no-deps", "--no-index", "--no-warn-script-location", str(wheel)]
    _run([sys.executable, "-m", "pip", "--python", str(python), *install])
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run([str(python), "-c", code]).strip())
    # A .pth line is appended after the venv's own site-packages: the wheel's `app` wins, and
    # the project venv's .pth files (its editable install) are not processed from there.
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within 60 s:\n{log.read_text()}")


@contextlib.contextmanager
def _serving(venv_bin: Path, cwd: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    """`ptychojobs serve` from the fresh venv until /health answers; stopped on exit."""
    port = _free_port()
    argv = [str(venv_bin / "ptychojobs"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=output)
    try:
        _wait_healthy(process, f"http://127.0.0.1:{port}/health", log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_installed_wheel_serves_and_migrates_to_head(venv_bin: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"  # not the checkout, so `app` can only come from the wheel
    cwd.mkdir()
    data_root = tmp_path / "data"
    env = _bare_env() | {"PTYCHOJOBS_DATA_ROOT": str(data_root)}
    where = _run(
        [str(venv_bin / "python"), "-c", "import app; print(app.__file__)"], cwd=cwd, env=env
    )
    assert Path(where.strip()).is_relative_to(venv_bin.parent), where
    with _serving(venv_bin, cwd, env, tmp_path / "serve.log"):
        pass
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = make_engine(f"sqlite:///{data_root / 'ptychojobs.db'}")
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == head
        tables = set(inspect(engine).get_table_names())
        assert tables == {"alembic_version", *SQLModel.metadata.tables}
    finally:
        engine.dispose()
