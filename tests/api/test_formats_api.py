"""A request (``?format=``) or a token (``ingest_format``) forces the alert format."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import bearer

FIXTURES = Path(__file__).parent.parent / "ingest" / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_a_request_or_a_token_forces_the_format(client: TestClient, tokens: dict) -> None:
    wazuh = load("wazuh_no_level.json")
    r = client.post("/api/v1/alerts?format=wazuh", json=wazuh, headers=bearer(tokens["ingest"]))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    # the same payload forced as elastic has no title: refused, with the reason
    r = client.post("/api/v1/alerts?format=elastic", json=wazuh, headers=bearer(tokens["ingest"]))
    assert r.status_code == 422 and r.json()["items"][0]["field"] == "title"
    created = client.post(
        "/api/v1/tokens",
        json={"name": "wz", "role": "ingest", "ingest_format": "wazuh"},
        headers=bearer(tokens["admin"]),
    ).json()
    other = {**wazuh, "id": "1714636800.9999"}
    r = client.post("/api/v1/alerts", json=other, headers=bearer(created["token"]))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    bad = client.post("/api/v1/alerts?format=nope", json=wazuh, headers=bearer(tokens["ingest"]))
    assert bad.status_code == 422


def test_socflow_token_create_binds_sources_and_a_format(sqlite_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from typer.testing import CliRunner

    from socflow.cli import app
    from socflow.db import make_engine, session_factory
    from socflow.tables import ApiToken

    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    args = ["token", "create", "--name", "wz", "--role", "ingest", "--source", "wazuh", "--format", "wazuh"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, [*args[:6], "--format", "nope"])
    assert bad.exit_code == 2
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "wz"))
    engine.dispose()
    assert row is not None and row.sources == ["wazuh"] and row.ingest_format == "wazuh"
