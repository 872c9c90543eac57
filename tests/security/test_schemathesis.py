"""Property-based requests over /openapi.json: no 5xx and no answer outside the schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import CHECKS
from sqlmodel import Session

from app import auth
from app.core.db import make_engine
from app.main import create_app
from app.migrate import upgrade_head
from tests.api.conftest import make_study_tree
from tests.security.conftest import secure_settings

MAX_EXAMPLES = 30  # per operation and mode: the whole run stays under a minute on two cores
# Two checks judge the requests, not the answers, and do not fit this API:
# - schema-valid bodies naming folders that hold no study are refused (422) by design: the
#   schema cannot say which folders exist;
# - unknown query parameters are ignored, as HTTP APIs do (and `?token=` relies on it).
# Every answer is still checked: no 5xx, documented status, content type, headers, schema.
NOT_CHECKED = ("positive_data_acceptance", "negative_data_rejection")


def _prepared_app(root: Path) -> tuple[FastAPI, str]:
    """An app requiring tokens, with a token and two finished (dry) runs to read."""
    data_root = root / "data"
    data_root.mkdir(parents=True)
    study = make_study_tree(data_root, prefix="demo")  # the Swagger example's paths
    app_settings = secure_settings(root, data_root)
    engine = make_engine(app_settings.resolved_database_url)
    upgrade_head(engine)
    with Session(engine) as session:
        secret = auth.create_token(session=session, name="fuzz").secret
    engine.dispose()
    app = create_app(app_settings)
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        for body in (study.body(dry_run=True), study.body(dry_run=True, filters={"dose": 1e4})):
            assert client.post("/runs", json=body).status_code == 201
    return app, secret


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    return _prepared_app(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.slow
def test_api_answers_within_its_schema(prepared: tuple[FastAPI, str]) -> None:
    app, secret = prepared
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # A run's event stream lasts as long as the run: covered by tests/api/test_events.py.
    schema = schema.exclude(path_regex=r"/events$")
    headers = {"Authorization": f"Bearer {secret}"}
    checks = [check for check in CHECKS.get_all() if check.__name__ not in NOT_CHECKED]
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Case) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=checks, headers=headers)

        try:
            check()
        except BaseException as exc:  # every operation runs; all failures are reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    print(f"schemathesis: {sum(statuses.values())} calls, statuses {sorted(statuses.items())}")
    assert sum(statuses.values()) > 200
    assert not any(code >= 500 for code in statuses)
    assert not failures, "\n\n".join(f"{label}\n{why}" for label, why in failures.items())
