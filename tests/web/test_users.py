"""Local user accounts (issue 22, People): password login on the server-side sessions, disabled accounts
refused and their sessions ended, constant work for unknown users, per-account lockout, the CLI."""

from __future__ import annotations

import json
import time

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from socflow import users
from socflow.auth import Role
from socflow.cli import app as cli_app
from socflow.db import make_engine, session_factory
from socflow.tables import AuditEvent, User
from socflow.web.routes import ACCOUNT_FAILURES
from socflow.web.security import COOKIE
from tests.web.conftest import Web
from tests.web.helpers import csrf_of, make_web_app

PASSWORD = "correct-horse-battery-9"


def _make_user(web: Web, name: str = "carol", role: Role = Role.analyst, password: str = PASSWORD) -> None:
    factory = session_factory(make_engine(web.url))
    with factory() as session, session.begin():
        users.create_user(session, name, role, password)


def _password_login(client: TestClient, username: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login/password",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text), "next": "/"},
        follow_redirects=False,
    )


def test_password_login_opens_the_queue_as_the_user(web: Web) -> None:
    _make_user(web)
    resp = _password_login(web.client, "carol", PASSWORD)
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    queue = web.client.get("/")
    assert queue.status_code == 200
    assert 'class="who">carol <span class="role">analyst</span>' in queue.text
    assert web.client.get("/api/v1/cases").status_code == 200  # the session works for the REST API too
    factory = session_factory(make_engine(web.url))
    with factory() as session:
        row = session.query(User).filter_by(username="carol").one()
        assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash and row.last_login_at is not None


def test_wrong_password_and_unknown_user_get_the_same_answer(web: Web) -> None:
    _make_user(web)
    wrong = _password_login(web.client, "carol", "not-the-password")
    unknown = _password_login(web.client, "nobody", "not-the-password")
    for resp in (wrong, unknown):
        assert resp.status_code == 401
        assert "Unknown user or wrong password." in resp.text
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_unknown_users_cost_one_argon2_verification_too() -> None:
    """Timing: an unknown name is verified against a dummy hash, so it takes about as long as a wrong
    password for a real account (not the microseconds of a bare lookup)."""
    real = users._hasher.hash(PASSWORD)
    users._dummy()  # made once per process

    def timed(stored: str | None) -> float:
        start = time.perf_counter()
        for _ in range(3):
            assert not users._verify(stored, "wrong-password-123")
        return (time.perf_counter() - start) / 3

    known, unknown = timed(real), timed(None)
    assert unknown > 0.25 * known and known > 0.25 * unknown, (known, unknown)


def test_a_disabled_user_cannot_log_in_and_its_open_session_ends(web: Web) -> None:
    _make_user(web)
    assert _password_login(web.client, "carol", PASSWORD).status_code == 303
    thief = TestClient(web.client.app)
    thief.cookies.set(COOKIE, web.client.cookies[COOKIE])
    assert thief.get("/", follow_redirects=False).status_code == 200
    result = CliRunner().invoke(cli_app, ["user", "disable", "carol"], env={"SOCFLOW_DATABASE__URL": web.url})
    assert result.exit_code == 0, result.output
    assert web.client.get("/", follow_redirects=False).status_code == 303  # back to the login page
    assert thief.get("/api/v1/cases").status_code == 401
    fresh = TestClient(make_web_app(web.settings))
    refused = _password_login(fresh, "carol", PASSWORD)
    assert refused.status_code == 401
    assert "Unknown user or wrong password." in refused.text


def test_repeated_wrong_passwords_lock_the_account_for_a_while(web: Web) -> None:
    _make_user(web, "dave")
    codes = [
        _password_login(TestClient(web.client.app), "dave", f"wrong-{i}-password").status_code
        for i in range(ACCOUNT_FAILURES + 1)
    ]
    assert codes[:ACCOUNT_FAILURES] == [401] * ACCOUNT_FAILURES and codes[-1] == 429
    assert _password_login(TestClient(web.client.app), "dave", PASSWORD).status_code == 429


def test_token_login_still_works_beside_passwords(web: Web) -> None:
    page = web.client.get("/login")
    assert 'action="/login/password"' in page.text and 'action="/login"' in page.text
    assert "/login/oidc" not in page.text  # single sign-on is off by default
    resp = web.client.post(
        "/login",
        data={"token": web.tokens["analyst"], "csrf_token": csrf_of(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert web.client.get("/login/oidc").status_code in (303, 404)


def test_user_cli_create_list_passwd_disable(web: Web) -> None:
    env = {"SOCFLOW_DATABASE__URL": web.url}
    runner = CliRunner()
    made = runner.invoke(
        cli_app,
        ["user", "create", "erin", "--role", "engineer", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    short = runner.invoke(cli_app, ["user", "create", "frank", "--password-stdin"], input="short\n", env=env)
    assert short.exit_code == 1 and "at least" in short.output
    prompted = runner.invoke(cli_app, ["user", "create", "gina"], input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert prompted.exit_code == 0, prompted.output
    listed = runner.invoke(cli_app, ["user", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["username"], r["role"], r["disabled_at"]) for r in rows] == [
        ("erin", "engineer", None),
        ("gina", "analyst", None),
    ]
    assert all("password_hash" not in r for r in rows)
    new = "another-long-password-2"
    changed = runner.invoke(
        cli_app, ["user", "passwd", "erin", "--password-stdin"], input=new + "\n", env=env
    )
    assert changed.exit_code == 0, changed.output
    client = TestClient(web.client.app)
    assert _password_login(client, "erin", PASSWORD).status_code == 401
    assert _password_login(client, "erin", new).status_code == 303
    gone = runner.invoke(cli_app, ["user", "disable", "nobody"], env=env)
    assert gone.exit_code == 1 and "no user named" in gone.output
    table = runner.invoke(cli_app, ["user", "list"], env=env)
    assert "erin" in table.output and "engineer" in table.output
    assert runner.invoke(cli_app, ["user", "disable", "gina"], env=env).exit_code == 0
    with session_factory(make_engine(web.url))() as session:
        events = session.execute(
            select(AuditEvent.action, AuditEvent.data)
            .where(AuditEvent.entity_type == "user")
            .order_by(AuditEvent.id)
        ).all()
    assert [(action, data["username"]) for action, data in events] == [
        ("user.created", "erin"),
        ("user.created", "gina"),
        ("user.password_changed", "erin"),
        ("user.disabled", "gina"),
    ]
    assert all(PASSWORD not in str(data) and new not in str(data) for _, data in events)
