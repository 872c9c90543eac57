"""Bearer tokens: required off loopback, stored hashed, revocable, and who submitted is kept."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from app import auth
from app.cli import cli
from app.cli.client import ApiError, PtychoClient
from app.core.config import Settings
from app.core.db import make_engine
from app.main import create_app
from tests.api.conftest import TEST_HOSTS, StudyTree
from tests.live_server import serve_in_thread
from tests.security.conftest import row_counts, secure_settings

OPEN_PATHS = {"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


# Pages outside the OpenAPI document: the dashboard's.
DASHBOARD_URLS = ["/", "/ui", "/ui/", "/ui/runs/1", "/ui/jobs/1", "/ui/static/dashboard.js"]


def _guarded_urls(client: TestClient) -> list[tuple[str, str]]:
    """(method, url) of every operation that must ask for a token, ids filled with 1."""
    urls = [("GET", url) for url in DASHBOARD_URLS]
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if path in OPEN_PATHS:
            continue
        url = path.replace("{run_id}", "1").replace("{job_id}", "1").replace("{name}", "x")
        urls.extend((method.upper(), url) for method in operations)
    return urls


def test_every_route_but_health_and_docs_needs_a_token(
    app_client: TestClient, engine: Engine
) -> None:
    urls = _guarded_urls(app_client)
    assert len(urls) >= 20, urls
    for method, url in urls:
        response = app_client.request(method, url, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, url, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    for url in ("/health", "/docs", "/redoc", "/openapi.json"):
        assert app_client.get(url).status_code == 200, url
    assert row_counts(engine)["run"] == 0


def test_a_token_opens_the_api_and_names_who_submitted(
    client: TestClient, engine: Engine, study: StudyTree
) -> None:
    response = client.post("/runs", json=study.body(dry_run=True))
    assert response.status_code == 201, response.text
    assert response.json()["submitted_by"] == "alice"
    assert client.get(f"/runs/{response.json()['id']}").json()["submitted_by"] == "alice"
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT submitted_by FROM run")).scalar_one()
    assert stored == "alice"


@pytest.mark.parametrize(
    "header", ["Bearer ptj_wrong", "Bearer ", "Basic YWxpY2U6eA==", "Bearer " + "x" * 10_000]
)
def test_wrong_tokens_are_refused(app_client: TestClient, token: str, header: str) -> None:
    response = app_client.get("/runs", headers={"Authorization": header})
    assert response.status_code == 401, response.text


def test_a_revoked_token_stops_working_at_once(
    client: TestClient, engine: Engine, study: StudyTree
) -> None:
    assert client.get("/runs").status_code == 200
    with Session(engine) as session:
        auth.revoke_token(session=session, name="alice")
    before = row_counts(engine)
    assert client.get("/runs").status_code == 401
    assert client.post("/runs", json=study.body(dry_run=True)).status_code == 401
    assert row_counts(engine) == before


def test_tokens_are_stored_as_their_hash_only(engine: Engine, token: str) -> None:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_token")).mappings().all()
    (row,) = rows
    assert token not in str(dict(row))
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith("ptj_")
    assert len(token) >= 40


def test_a_token_is_compared_with_every_live_hash(
    engine: Engine, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant time: no early exit, so timing cannot tell which token nearly matched."""
    with Session(engine) as session:
        for name in ("bob", "carol"):
            auth.create_token(session=session, name=name)
        compared: list[str] = []
        real_compare = hmac.compare_digest

        def compare(a: str, b: str) -> bool:
            compared.append(a)
            return real_compare(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", compare)
        found = auth.find_token(session=session, presented=token)
    assert found is not None
    assert found.name == "alice"
    assert len(compared) == 3


def test_use_is_recorded_at_most_once_a_minute(client: TestClient, engine: Engine) -> None:
    client.get("/runs")
    client.get("/runs")
    with Session(engine) as session:
        (alice,) = auth.list_tokens(session=session)
    assert alice.last_used_at is not None
    with Session(engine) as session:
        assert not auth.note_use(session=session, token=alice)


def test_reads_take_a_cookie_and_writes_do_not(
    app_client: TestClient, engine: Engine, token: str, study: StudyTree
) -> None:
    app_client.cookies.set("ptychojobs_token", token)
    assert app_client.get("/runs").status_code == 200
    # A page on another site could make the browser send the cookie: writes ignore it.
    assert app_client.post("/runs", json=study.body(dry_run=True)).status_code == 401
    response = app_client.post("/runs", params={"token": token}, json=study.body(dry_run=True))
    assert response.status_code == 401
    assert row_counts(engine)["run"] == 0


def test_a_dashboard_link_with_a_token_moves_it_into_a_cookie(
    app_client: TestClient, token: str
) -> None:
    response = app_client.get("/ui/", params={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    cookie = response.headers["set-cookie"]
    assert f"ptychojobs_token={token}" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert app_client.get("/ui/").status_code == 200  # the cookie now opens the pages


@pytest.mark.parametrize(
    "path", ["/runs", "/runs/1/report", "/jobs/1/history", "/manifests/1", "/metrics"]
)
def test_a_query_token_is_refused_outside_the_dashboard_entry(
    app_client: TestClient, token: str, path: str
) -> None:
    response = app_client.get(path, params={"token": token}, follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_a_link_s_token_wins_over_a_stale_cookie(
    app_client: TestClient, engine: Engine, token: str
) -> None:
    with Session(engine) as session:
        stale = auth.create_token(session=session, name="old").secret
        auth.revoke_token(session=session, name="old")
    app_client.cookies.set("ptychojobs_token", stale)
    assert app_client.get("/runs").status_code == 401  # the cookie alone: revoked
    response = app_client.get("/ui/", params={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert f"ptychojobs_token={token}" in response.headers["set-cookie"]


def test_a_link_from_another_site_cannot_replace_a_valid_cookie(
    app_client: TestClient, engine: Engine, token: str
) -> None:
    with Session(engine) as session:
        mallory = auth.create_token(session=session, name="mallory").secret
    app_client.cookies.set("ptychojobs_token", token)
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    response = app_client.get(
        "/ui/", params={"token": mallory}, headers=cross_site, follow_redirects=False
    )
    assert response.status_code == 401
    assert "another site" in response.json()["detail"]
    assert "set-cookie" not in response.headers
    # From this site (or with no cookie yet) the link still signs in.
    same_site = {"Sec-Fetch-Site": "same-origin"}
    response = app_client.get(
        "/ui/", params={"token": mallory}, headers=same_site, follow_redirects=False
    )
    assert response.status_code == 303
    app_client.cookies.clear()
    response = app_client.get(
        "/ui/", params={"token": mallory}, headers=cross_site, follow_redirects=False
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("host", "auth_mode", "required"),
    [
        ("127.0.0.1", "auto", False),
        ("::1", "auto", False),
        ("localhost", "auto", False),
        ("0.0.0.0", "auto", True),
        ("192.168.1.5", "auto", True),
        ("127.0.0.1", "on", True),
        ("0.0.0.0", "off", False),
    ],
)
def test_tokens_are_required_unless_bound_to_loopback(
    host: str, auth_mode: str, required: bool
) -> None:
    assert Settings(host=host, auth=auth_mode).auth_required is required  # type: ignore[arg-type]


def test_loopback_without_tokens_records_local(
    tmp_path: Path, data_root: Path, study: StudyTree
) -> None:
    settings = secure_settings(tmp_path, data_root, auth="auto")
    with TestClient(create_app(settings)) as client:
        response = client.post("/runs", json=study.body(dry_run=True))
    assert response.status_code == 201
    assert response.json()["submitted_by"] == "local"


def test_an_untrusted_host_header_is_refused(
    client: TestClient, engine: Engine, study: StudyTree
) -> None:
    response = client.post("/runs", json=study.body(dry_run=True), headers={"Host": "evil.test"})
    assert response.status_code == 400
    assert row_counts(engine)["run"] == 0


def test_loopback_serves_only_loopback_host_names() -> None:
    assert set(Settings(host="127.0.0.1").allowed_hosts) == {"localhost", "127.0.0.1", "[::1]"}
    assert Settings(host="0.0.0.0").allowed_hosts == ["*"]
    assert Settings(trusted_hosts="api.example.org, *.lab.example").allowed_hosts == [
        "api.example.org",
        "*.lab.example",
    ]


def test_cors_is_off_unless_origins_are_configured(tmp_path: Path, data_root: Path) -> None:
    preflight = {"Origin": "https://elsewhere.test", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(secure_settings(tmp_path, data_root))) as client:
        response = client.options("/runs", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    allowed = secure_settings(tmp_path, data_root, cors_origins=["https://elsewhere.test"])
    with TestClient(create_app(allowed)) as client:
        response = client.options("/runs", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://elsewhere.test"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's settings: a fresh data root and database under tmp_path."""
    from app.core.config import get_settings

    monkeypatch.setenv("PTYCHOJOBS_DATA_ROOT", str(tmp_path / "cli-data"))
    monkeypatch.setenv("PTYCHOJOBS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PTYCHOJOBS_TRUSTED_HOSTS", ",".join(TEST_HOSTS))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_token_commands_create_list_and_revoke(cli_env: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["token", "create", "ci"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("ptj_")
    again = runner.invoke(cli, ["token", "create", "ci"])
    assert again.exit_code == 1
    assert "already called 'ci'" in again.output
    listed = runner.invoke(cli, ["token", "list"])
    assert listed.exit_code == 0
    assert "ci" in listed.output
    assert secret not in listed.output
    assert runner.invoke(cli, ["token", "revoke", "ci"]).exit_code == 0
    gone = runner.invoke(cli, ["token", "revoke", "ci"])
    assert gone.exit_code == 1
    assert "no live token" in gone.output


def test_serve_refuses_to_start_off_loopback_without_a_token(cli_env: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "token create" in result.output


def test_the_cli_client_sends_its_token(tmp_path: Path, data_root: Path) -> None:
    settings = secure_settings(tmp_path, data_root)
    with serve_in_thread(settings) as url:
        engine = make_engine(settings.resolved_database_url)
        with Session(engine) as session:
            secret = auth.create_token(session=session, name="cli").secret
        engine.dispose()
        with PtychoClient(url, token=secret) as client:
            assert client.runs()["count"] == 0
        with PtychoClient(url) as client, pytest.raises(ApiError) as refused:
            client.runs()
    assert refused.value.status_code == 401
