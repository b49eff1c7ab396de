"""Server-side sessions (issue 17, defect 9): logout and revocation end a session at once, copies of the
cookie included; failed logins are rate-limited per client."""

from __future__ import annotations

from fastapi.testclient import TestClient

from socflow.web.security import COOKIE, LOGIN_FAILURES
from tests.web.conftest import Web
from tests.web.helpers import csrf_of, login, make_web_app


def _copy(web: Web) -> TestClient:
    thief = TestClient(web.client.app)
    thief.cookies.set(COOKIE, web.client.cookies[COOKIE])
    return thief


def test_a_copied_cookie_stops_working_after_logout(web: Web) -> None:
    csrf = login(web.client, web.tokens["analyst"])
    thief = _copy(web)
    assert thief.get("/", follow_redirects=False).status_code == 200
    assert thief.get("/api/v1/cases").status_code == 200
    out = web.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert thief.get("/", follow_redirects=False).status_code == 303  # back to the login page
    assert thief.get("/api/v1/cases").status_code == 401


def test_revoking_the_token_ends_its_sessions(web: Web) -> None:
    login(web.client, web.tokens["analyst"])
    thief = _copy(web)
    tokens = web.client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {web.tokens['admin']}"})
    (mine,) = [t for t in tokens.json() if t["name"] == "analyst-alice"]
    r = web.client.delete(
        f"/api/v1/tokens/{mine['id']}", headers={"Authorization": f"Bearer {web.tokens['admin']}"}
    )
    assert r.status_code == 200
    assert thief.get("/api/v1/cases").status_code == 401


def test_failed_logins_are_rate_limited_per_client(web: Web) -> None:
    client = TestClient(make_web_app(web.settings))
    page = client.get("/login")
    csrf = csrf_of(page.text)
    codes = [
        client.post("/login", data={"token": "sf_wrong", "csrf_token": csrf, "next": "/"}).status_code
        for _ in range(LOGIN_FAILURES + 2)
    ]
    assert codes[:LOGIN_FAILURES] == [401] * LOGIN_FAILURES
    assert codes[-1] == 429
    # even the right token waits for the window to move on
    right = client.post("/login", data={"token": web.tokens["analyst"], "csrf_token": csrf, "next": "/"})
    assert right.status_code == 429


def test_the_dead_letter_page_lists_refused_items_escaped(web: Web) -> None:
    hostile = '{"source":"<script>x</script>","title":"t"}'
    r = web.client.post(
        "/api/v1/alerts",
        content=hostile,
        headers={"Authorization": f"Bearer {web.tokens['ingest']}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    login(web.client, web.tokens["analyst"])
    page = web.client.get("/dead-letters")
    assert page.status_code == 200
    assert "severity" in page.text and "<script>x</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    anonymous = TestClient(web.client.app).get("/dead-letters", follow_redirects=False)
    assert anonymous.status_code == 303
