"""Request dependencies: the database session and the settings of the running app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from app.core.config import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, on the app's engine; crud functions commit."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
