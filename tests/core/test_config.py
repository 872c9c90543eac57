"""Settings: the data root is made absolute once, where the settings load."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings


@pytest.fixture
def two_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Folders A and B, no PTYCHOJOBS_* variables; the test starts in A."""
    for name in ("PTYCHOJOBS_DATA_ROOT", "PTYCHOJOBS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    return a, b


def test_relative_data_root_means_the_folder_where_settings_loaded(
    two_folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_folders
    monkeypatch.setenv("PTYCHOJOBS_DATA_ROOT", "data")
    settings = Settings()
    monkeypatch.chdir(b)  # a worker started from another folder
    assert settings.data_root == a.resolve() / "data"
    database = a.resolve() / "data" / "ptychojobs.db"
    assert settings.resolved_database_url == f"sqlite:///{database}"


def test_default_data_root_is_absolute_too(
    two_folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_folders
    settings = Settings()
    monkeypatch.chdir(b)
    assert settings.data_root == a.resolve() / "data"


def test_data_root_expands_the_home_folder(
    two_folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings(data_root=Path("~/studies")).data_root == tmp_path.resolve() / "studies"
