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
