"""The HTTP contract (issue 17, defects 11 and 12): auth before the body is read, 401 before 422,
the last admin token cannot be revoked through the API, the OpenAPI schema documents the error codes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from socflow.auth import Role
from socflow.settings import Settings
from tests.api.conftest import bearer, make_token


def test_no_or_bad_token_is_401_before_the_body_is_read(client: TestClient, tokens: dict) -> None:
    for headers in ({}, bearer("sf_not-a-token"), {"Authorization": "Basic abc"}):
        for path in ("/api/v1/alerts", "/api/v1/tokens", "/api/v1/cases/1/decision"):
            r = client.post(
                path, content=b"{not json", headers={**headers, "Content-Type": "application/json"}
            )
            assert r.status_code == 401, (path, headers, r.status_code, r.text)
    # a declared 60 MB body from nobody: 401, not 413 and not read
    r = client.post("/api/v1/alerts", headers={"Content-Length": str(60 * 1024 * 1024)}, content=b"")
    assert r.status_code == 401


def test_malformed_json_after_auth_is_422(client: TestClient, tokens: dict) -> None:
    r = client.post(
        "/api/v1/tokens",
        content=b"{not json",
        headers={**bearer(tokens["admin"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 422


def test_an_oversize_declared_body_is_413_once_authenticated(client: TestClient, tokens: dict) -> None:
    r = client.post(
        "/api/v1/alerts",
        headers={**bearer(tokens["ingest"]), "Content-Length": str(60 * 1024 * 1024)},
        content=b"",
    )
    assert r.status_code == 413


def test_the_last_admin_token_cannot_be_revoked_through_the_api(
    client: TestClient, api_settings: Settings
) -> None:
    admin = make_token(api_settings.database.url, Role.admin, name="only-admin")
    listing = client.get("/api/v1/tokens", headers=bearer(admin)).json()
    (mine,) = [t for t in listing if t["name"] == "only-admin"]
    r = client.delete(f"/api/v1/tokens/{mine['id']}", headers=bearer(admin))
    assert r.status_code == 409, r.text
    assert client.get("/api/v1/tokens", headers=bearer(admin)).status_code == 200  # still in
    second = client.post("/api/v1/tokens", json={"name": "admin-2", "role": "admin"}, headers=bearer(admin))
    assert second.status_code == 201
    assert client.delete(f"/api/v1/tokens/{mine['id']}", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/tokens", headers=bearer(admin)).status_code == 401


def test_tokens_carry_sources_and_a_format(client: TestClient, tokens: dict) -> None:
    r = client.post(
        "/api/v1/tokens",
        json={"name": "wazuh-feed", "role": "ingest", "sources": ["wazuh"], "ingest_format": "wazuh"},
        headers=bearer(tokens["admin"]),
    )
    assert r.status_code == 201 and r.json()["sources"] == ["wazuh"]
    bad = client.post(
        "/api/v1/tokens",
        json={"name": "x", "role": "ingest", "ingest_format": "nope"},
        headers=bearer(tokens["admin"]),
    )
    assert bad.status_code == 422 and bad.json()["field"] == "ingest_format"
