"""POST /api/v1/alerts: batches, duplicates, storms, bad items, limits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from socflow.db import make_engine, session_factory
from socflow.settings import Settings
from socflow.tables import Alert, Case, WorkflowRun
from tests.api.conftest import bearer

T0 = datetime(2025, 4, 9, 10, 0, tzinfo=UTC)


def _ndjson(alerts: list[dict]) -> str:
    return "\n".join(json.dumps(a) for a in alerts) + "\n"


def _distinct(n: int) -> list[dict]:
    return [
        {
            "source": "siem",
            "source_ref": f"n-{i}",
            "title": f"Alert {i}",
            "severity": "low",
            "rule": {"id": f"rule-{i % 37}"},
            "entities": {"hosts": [f"host-{i}"]},
        }
        for i in range(n)
    ]


def _storm() -> list[dict]:
    storm = [
        {
            "source": "edr",
            "title": "Suspicious PowerShell",
            "severity": "high",
            "timestamp": (T0 + timedelta(seconds=i * 600 / 5000)).isoformat(),
            "rule": {"id": "ps-encoded", "tags": ["attack.t1059.001"]},
            "entities": {"hosts": ["WS123"], "users": ["alice"]},
            "description": f"event {i}",
        }
        for i in range(5000)
    ]
    unrelated = [
        {
            "source": "edr",
            "source_ref": f"u-{i}",
            "title": f"Other {i}",
            "severity": "medium",
            "rule": {"id": f"other-{i}"},
            "entities": {"hosts": [f"SRV{i}"]},
        }
        for i in range(20)
    ]
    return storm + unrelated


def _counts(db_url: str) -> tuple[int, int, int]:
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        out = (
            int(s.scalar(select(func.count(Alert.id))) or 0),
            int(s.scalar(select(func.count(Case.id))) or 0),
            int(s.scalar(select(func.count(WorkflowRun.id)).where(WorkflowRun.status == "queued")) or 0),
        )
    engine.dispose()
    return out


def test_same_batch_twice_is_stored_once(client: TestClient, tokens: dict, api_settings: Settings) -> None:
    body = _ndjson(_distinct(1000))
    headers = {**bearer(tokens["ingest"]), "Content-Type": "application/x-ndjson"}
    first = client.post("/api/v1/alerts", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 1000
    second = client.post("/api/v1/alerts", content=body, headers=headers)
    assert second.status_code == 200
    assert second.json()["duplicates"] == 1000 and second.json()["accepted"] == 0
    assert _counts(api_settings.database.url)[0] == 1000


def _case_shape(db_url: str) -> list[tuple[str | None, int]]:
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = s.execute(
            select(Case.grouping_key, func.count(Alert.id))
            .join(Alert, Alert.case_id == Case.id)
            .group_by(Case.id)
        ).all()
    engine.dispose()
    return sorted((k, n) for k, n in rows)


def test_storm_becomes_one_case_with_one_run_via_api_and_cli(
    client: TestClient, tokens: dict, api_settings: Settings, _sqlite_template: Path, tmp_path: Path
) -> None:
    alerts = _storm()
    r = client.post(
        "/api/v1/alerts",
        content=_ndjson(alerts),
        headers={**bearer(tokens["ingest"]), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 5020 and r.json()["runs_queued"] == 21
    assert _counts(api_settings.database.url) == (5020, 21, 21)
    detail = client.get("/api/v1/cases?limit=1000", headers=bearer(tokens["analyst"])).json()
    storm_case = next(c for c in detail["items"] if c["title"] == "Suspicious PowerShell")
    case = client.get(f"/api/v1/cases/{storm_case['id']}", headers=bearer(tokens["analyst"])).json()
    assert case["alerts_total"] == 5000 and len(case["alerts"]) == 1000  # the detail shows the first 1000
    fetched: list[dict] = []
    for offset in range(0, 5000, 1000):
        page = client.get(
            f"/api/v1/alerts?case_id={storm_case['id']}&limit=1000&offset={offset}",
            headers=bearer(tokens["analyst"]),
        ).json()
        assert page["total"] == 5000
        fetched += page["items"]
    assert len({a["id"] for a in fetched}) == 5000
    reasons = {a["grouping_reason"].split(":")[0] for a in fetched}
    assert reasons == {"new case", f"joined case {storm_case['id']}"}

    # the same storm through the CLI, into another database, gives the same cases
    cli_db = tmp_path / "cli.db"
    shutil.copyfile(_sqlite_template, cli_db)
    sqlite_url = f"sqlite:///{cli_db}"
    path = tmp_path / "storm.ndjson"
    path.write_text(_ndjson(alerts))
    env = {**os.environ, "SOCFLOW_DATABASE__URL": sqlite_url}
    out = subprocess.run(
        [sys.executable, "-m", "socflow", "ingest", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[:2000]
    assert "21 triage runs queued" in out.stdout, out.stdout
    assert _case_shape(sqlite_url) == _case_shape(api_settings.database.url)


def test_bad_items_are_rejected_by_index_and_the_rest_stored(
    client: TestClient, tokens: dict, api_settings: Settings
) -> None:
    good = _distinct(3)
    lines = [
        json.dumps(good[0]),
        '{"source": "x", "title": ',  # index 1: bad JSON
        json.dumps({"source": "x", "title": "no severity"}),  # index 2: missing field
        json.dumps(good[1]),
        json.dumps({**good[2], "description": "A" * (65 * 1024)}),  # index 4: oversize field
        json.dumps({"source": "x", "source_ref": "ok-2", "title": "fine", "severity": "low"}),
    ]
    r = client.post(
        "/api/v1/alerts",
        content="\n".join(lines),
        headers={**bearer(tokens["ingest"]), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 207, r.text
    items = r.json()["items"]
    rejected = {i["index"]: i for i in items if i["status"] == "rejected"}
    assert set(rejected) == {1, 2, 4}
    assert "invalid JSON" in rejected[1]["reason"]
    assert rejected[2]["field"] == "severity"
    assert rejected[4]["field"] == "description" and "65536" in rejected[4]["reason"]
    assert _counts(api_settings.database.url)[0] == 3


def test_all_rejected_is_422_and_limits_are_413(
    client: TestClient, tokens: dict, api_settings: Settings
) -> None:
    headers = {**bearer(tokens["ingest"]), "Content-Type": "application/json"}
    r = client.post("/api/v1/alerts", content=json.dumps([{"title": "x"}]), headers=headers)
    assert r.status_code == 422 and r.json()["rejected"] == 1
    small = Settings(
        **{**api_settings.model_dump(), "ingest": {"max_batch_items": 5, "max_body_bytes": 4096}}
    )
    from socflow.api import create_app
    from socflow.dispatch import NullDispatcher

    with TestClient(create_app(small, dispatcher=NullDispatcher())) as c:
        r = c.post("/api/v1/alerts", content=json.dumps(_distinct(6)), headers=headers)
        assert r.status_code == 413 and "batch size" in r.json()["detail"]
        r = c.post("/api/v1/alerts", content=json.dumps(_distinct(40)), headers=headers)
        assert r.status_code == 413 and "body size" in r.json()["detail"]


def test_hostile_text_is_stored_as_data(client: TestClient, tokens: dict) -> None:
    evil = {
        "source": "x",
        "source_ref": "evil",
        "title": "<script>alert(1)</script>",
        "severity": "low",
        "description": "'; DROP TABLE alerts; -- {{7*7}} ${jndi:ldap://x}",
    }
    r = client.post("/api/v1/alerts", json=evil, headers=bearer(tokens["ingest"]))
    assert r.status_code == 200
    alert_id = r.json()["items"][0]["alert_id"]
    got = client.get(f"/api/v1/alerts/{alert_id}", headers=bearer(tokens["analyst"])).json()
    assert got["title"] == evil["title"] and got["description"] == evil["description"]
