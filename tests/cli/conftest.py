"""Tests here talk to a live API: its fixtures come from tests/live_server.py."""

from tests.live_server import engine, server, settings, study

__all__ = ["engine", "server", "settings", "study"]
