"""Cases over the API: stale drafts, merge and move (audited), assignment, health."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from socflow.db import make_engine, session_factory
from socflow.settings import Settings
from socflow.tables import WorkflowRun
from tests.api.conftest import bearer
from tests.workflows.triage_helpers import make_runner, scripted

STORM = {
    "source": "edr",
    "title": "Encoded PowerShell",
    "severity": "high",
    "rule": {"id": "ps-enc", "tags": ["attack.t1059.001"]},
    "entities": {"hosts": ["WS9"]},
}


def _runs(settings: Settings, case_id: int) -> list[WorkflowRun]:
    engine = make_engine(settings.database.url)
    with session_factory(engine)() as s:
        rows = list(
            s.scalars(
                select(WorkflowRun).where(WorkflowRun.case_id == case_id).order_by(WorkflowRun.created_at)
            )
        )
    engine.dispose()
    return rows


def test_alert_joining_a_waiting_case_makes_the_draft_stale(
    client: TestClient, tokens: dict, api_settings: Settings
) -> None:
    r = client.post("/api/v1/alerts", json={**STORM, "source_ref": "s-1"}, headers=bearer(tokens["ingest"]))
    case_id = r.json()["items"][0]["case_id"]
    (run,) = _runs(api_settings, case_id)
    runner = make_runner(api_settings, scripted())
    assert runner.advance(run.id).status.value == "awaiting_input"

    # two more alerts of the same storm join the case, with a severity the assessment did not see: the first
    # makes the draft stale and queues the re-assessment, the second joins with it queued
    for ref in ("s-2", "s-3"):
        alert = {**STORM, "source_ref": ref, "severity": "critical"}
        r = client.post("/api/v1/alerts", json=alert, headers=bearer(tokens["ingest"]))
        assert r.json()["items"][0]["case_id"] == case_id
    runs = _runs(api_settings, case_id)
    assert [x.status for x in runs] == ["superseded", "queued"]  # at most one re-assessment per window
    assert runs[1].input.get("reassess") is True

    decided = client.post(
        f"/api/v1/cases/{case_id}/decision", json={"action": "approve"}, headers=bearer(tokens["analyst"])
    )
    assert decided.status_code == 409 and decided.json()["code"] == "stale_draft"

    assert runner.advance(runs[1].id).status.value == "awaiting_input"  # the re-assessment redrafts
    detail = client.get(f"/api/v1/cases/{case_id}", headers=bearer(tokens["analyst"])).json()
    assert detail["notes"][0]["stale_at"] is None and detail["notes"][0]["current_revision"] == 2
    ok = client.post(
        f"/api/v1/cases/{case_id}/decision", json={"action": "approve"}, headers=bearer(tokens["analyst"])
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "completed" and ok.json()["case_status"] == "escalated"
    again = client.post(
        f"/api/v1/cases/{case_id}/decision", json={"action": "approve"}, headers=bearer(tokens["analyst"])
    )
    assert again.status_code == 409 and again.json()["code"] == "no_decision_pending"  # never 404
    missing = client.post(
        "/api/v1/cases/999999/decision", json={"action": "approve"}, headers=bearer(tokens["analyst"])
    )
    assert missing.status_code == 404


def test_merge_move_and_assign_are_audited(client: TestClient, tokens: dict) -> None:
    h = bearer(tokens["ingest"])
    ids = [
        client.post(
            "/api/v1/alerts",
            json={
                "source": "s",
                "source_ref": f"m-{i}",
                "title": f"A{i}",
                "severity": sev,
                "rule": {"id": f"r{i}"},
            },
            headers=h,
        ).json()["items"][0]
        for i, sev in enumerate(["low", "critical", "medium"])
    ]
    a = bearer(tokens["analyst"])
    merged = client.post(
        f"/api/v1/cases/{ids[1]['case_id']}/merge", json={"into": ids[0]["case_id"]}, headers=a
    )
    assert merged.status_code == 200 and merged.json()["severity"] == "critical"
    moved = client.post(
        f"/api/v1/cases/{ids[2]['case_id']}/alerts/{ids[2]['alert_id']}/move",
        json={"case_id": ids[0]["case_id"]},
        headers=a,
    )
    assert moved.status_code == 200 and moved.json()["case_id"] == ids[0]["case_id"]
    assert "moved from case" in moved.json()["grouping_reason"]
    patched = client.patch(f"/api/v1/cases/{ids[0]['case_id']}", json={"assignee": "ana"}, headers=a)
    assert patched.json()["assignee"] == "ana"
    detail = client.get(f"/api/v1/cases/{ids[0]['case_id']}", headers=a).json()
    assert detail["alerts_total"] == 3
    actions = [e["action"] for e in detail["audit"]]
    assert {"case.merged", "alert.moved", "case.updated"} <= set(actions)
    assert all(
        e["actor"] == "api:analyst-user"
        for e in detail["audit"]
        if e["action"] in ("case.merged", "alert.moved")
    )
    closed = client.get(f"/api/v1/cases/{ids[1]['case_id']}", headers=a).json()
    assert closed["status"] == "closed" and closed["alerts_total"] == 0
    self_merge = client.post(
        f"/api/v1/cases/{ids[0]['case_id']}/merge", json={"into": ids[0]["case_id"]}, headers=a
    )
    assert self_merge.status_code == 409
    assert client.get("/api/v1/cases/999999", headers=a).status_code == 404


def test_filters_and_pagination(client: TestClient, tokens: dict) -> None:
    for i in range(5):
        client.post(
            "/api/v1/alerts",
            json={
                "source": "p",
                "source_ref": f"p{i}",
                "title": f"P{i}",
                "severity": "high" if i % 2 else "low",
                "rule": {"id": f"r{i}"},
            },
            headers=bearer(tokens["ingest"]),
        )
    a = bearer(tokens["analyst"])
    page = client.get("/api/v1/cases?severity=high&limit=1", headers=a).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert client.get("/api/v1/cases?status=bogus", headers=a).status_code == 422


def test_health_is_public(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
