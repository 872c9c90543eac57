"""Deployment files: compose parses and wires migrate, api, GPU worker and the postgres profile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_compose_runs_migrate_once_then_api_and_a_gpu_worker() -> None:
    services = _compose()["services"]
    assert set(services) == {"migrate", "api", "worker", "postgres"}
    assert services["migrate"]["command"] == ["ptychojobs", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        needs = services[name]["depends_on"]["migrate"]
        assert needs == {"condition": "service_completed_successfully"}
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker"]["command"][:2] == ["ptychojobs", "worker"]
    assert services["api"]["command"][:2] == ["ptychojobs", "serve"]


def test_sqlite_lives_on_a_named_volume_and_postgres_is_a_profile() -> None:
    compose = _compose()
    services = compose["services"]
    for name in ("migrate", "api", "worker"):
        assert "data:/data" in services[name]["volumes"]
        env = services[name]["environment"]
        assert env["PTYCHOJOBS_DATA_ROOT"] == "/data"
        # Empty by default (SQLite under /data); the postgres profile sets it.
        assert env["PTYCHOJOBS_DATABASE_URL"] == "${PTYCHOJOBS_DATABASE_URL:-}"
        postgres = services[name]["depends_on"]["postgres"]
        assert postgres == {"condition": "service_healthy", "required": False}
    assert services["postgres"]["profiles"] == ["postgres"]
    assert set(compose["volumes"]) == {"data", "pgdata"}


def test_dockerfile_installs_the_project_and_serves() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    for copied in ("app", "worker", "requirements.txt"):
        assert re.search(rf"^COPY .*\b{re.escape(copied)}\b", dockerfile, re.MULTILINE), copied
    assert re.search(r"^RUN pip install --no-deps \.$", dockerfile, re.MULTILINE)  # no -e
    assert 'CMD ["ptychojobs", "serve"]' in dockerfile


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    defaults = Settings.model_construct()
    expected = {}
    for name in Settings.model_fields:
        value = getattr(defaults, name)
        expected[f"PTYCHOJOBS_{name.upper()}"] = "" if value is None else str(value)
    assert listed == expected
