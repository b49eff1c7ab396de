"""Write-back targets through the outbox: the status mapping, Kibana's signals API, Splunk ES
``notable_update``, a signed webhook; refusals fail at once and are retried on demand; pending and failed
deliveries are visible in the API, the CLI and the UI with their last error."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from socflow.api import create_app
from socflow.auth import Role
from socflow.cli import app as cli
from socflow.db import make_engine, session_factory
from socflow.dispatch import NullDispatcher
from socflow.ingest import IngestService
from socflow.outbox import deliver_outbox as deliver
from socflow.outbox import enqueue_writeback, list_outbox, writeback_status
from socflow.settings import Settings
from socflow.tables import Case
from tests.api.conftest import bearer, make_token
from tests.servers.writeback_http import KIBANA_PATH, WritebackServer, writeback_server
from tests.web.helpers import login

SECRET = "s3cret-hook-key"


@pytest.fixture
def remote() -> Iterator[WritebackServer]:
    with writeback_server() as server:
        yield server


def settings_for(db_url: str, remote: WritebackServer, **writeback: Any) -> Settings:
    return Settings(
        database={"url": db_url},
        model={"backend": "scripted"},
        writeback={
            "token": "wb-token",
            "backoff_seconds": 0,
            "case_url": "https://soc.example/cases/{case_id}",
            **writeback,
        },
    )


ELASTIC_HIT = {
    "_index": ".internal.alerts-security.alerts-default-000001",
    "_id": "doc-1",
    "_source": {
        "@timestamp": "2025-04-09T10:00:00Z",
        "kibana.alert.uuid": "uuid-1",
        "kibana.alert.rule.name": "Encoded PowerShell",
        "kibana.alert.severity": "high",
        "host": {"name": "WS1"},
    },
}
NOTABLE = {
    "_time": "1744192800",
    "event_id": "EV-1@@notable@@abc",
    "rule_name": "Brute force",
    "urgency": "high",
    "dest": "DC01",
}
GENERIC = {"source": "edr", "source_ref": "edr-9", "title": "Ransomware note", "severity": "critical"}


def decided_case(
    settings: Settings, alerts: list[tuple[str, dict[str, Any]]], verdict: str, action: str
) -> int:
    """A case holding ``alerts`` (format, item), with ``verdict``, decided with ``action``."""
    from socflow.normalize import to_generic

    factory = session_factory(make_engine(settings.database.url))
    generic = [to_generic(item, fmt=fmt) for fmt, item in alerts]
    for a in generic:
        a["rule"] = {"id": "one-case"}
        a["entities"] = {"hosts": ["WS1"]}
    created: list[int] = []
    service = IngestService(factory, on_case_created=created.append)
    from socflow.grouping import KeyGrouper

    service.grouper = KeyGrouper(["rule"], 3600)
    service.ingest_text("\n".join(json.dumps(a) for a in generic), actor="test")
    (case_id,) = created
    with factory() as session, session.begin():
        case = session.get(Case, case_id)
        assert case is not None
        case.verdict = verdict
        decision = {"action": action, "user": "ana", "reason": "checked", "run_id": "r1"}
        enqueue_writeback(session, case, decision)
        enqueue_writeback(session, case, decision)  # a re-run of the deciding step adds nothing
    return case_id


def test_status_mapping() -> None:
    assert writeback_status("approve", "false_positive") == "closed"
    assert writeback_status("edit", "benign_positive") == "closed"
    assert writeback_status("approve", "true_positive") == "acknowledged"
    assert writeback_status("approve", "needs_review") == "acknowledged"
    assert writeback_status("escalate", "false_positive") == "acknowledged"
    assert writeback_status("reject", "true_positive") is None


def test_kibana_splunk_and_webhook_targets(sqlite_url: str, remote: WritebackServer) -> None:
    settings = settings_for(
        sqlite_url,
        remote,
        kibana_url=remote.url,
        elastic_url="http://127.0.0.1:9",  # the Kibana API wins when a Kibana URL is configured
        splunk_url=remote.url,
        webhook_url=remote.url + "/hook",
        webhook_secret=SECRET,
    )
    alerts = [("elastic", ELASTIC_HIT), ("splunk_notable", NOTABLE), ("generic", GENERIC)]
    case_id = decided_case(settings, alerts, "false_positive", "approve")
    factory = session_factory(make_engine(settings.database.url))
    with factory() as s:
        rows = list_outbox(s)
    assert sorted(r.target for r in rows) == ["elastic", "splunk", "webhook"]  # the same decision twice: once

    assert deliver(settings).counts() == {"delivered": 3, "retrying": 0, "failed": 0, "skipped": 0}
    assert remote.refused == []
    assert remote.signals == {"uuid-1": "closed"}
    notable = remote.notables["EV-1@@notable@@abc"]
    assert notable["status"] == "5" and notable["newOwner"] == "ana"
    assert f"https://soc.example/cases/{case_id}" in notable["comment"] and "ana" in notable["comment"]

    ((headers, body),) = remote.hooks
    webhook_row = next(r for r in rows if r.target == "webhook")
    assert headers["x-socflow-delivery"] == webhook_row.id
    expected = hmac.new(
        SECRET.encode(), headers["x-socflow-timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["x-socflow-signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert (payload["status"], payload["refs"][0]["source_ref"]) == ("closed", "edr-9")
    assert "s3cret" not in body.decode() and headers["authorization"] == "Bearer wb-token"


def test_the_fakes_refuse_undocumented_shapes(remote: WritebackServer) -> None:
    auth = {"Authorization": "Bearer x"}
    body = {"signal_ids": ["a"], "status": "closed"}
    no_xsrf = httpx.post(remote.url + KIBANA_PATH, json=body, headers=auth)
    bad_status = httpx.post(
        remote.url + KIBANA_PATH,
        json={"signal_ids": ["a"], "status": "resolved"},
        headers={**auth, "kbn-xsrf": "1"},
    )
    json_notable = httpx.post(remote.url + "/services/notable_update", json={"ruleUIDs": ["a"]}, headers=auth)
    word_status = httpx.post(
        remote.url + "/services/notable_update", data={"ruleUIDs": "a", "status": "closed"}, headers=auth
    )
    assert [r.status_code for r in (no_xsrf, bad_status, json_notable, word_status)] == [400, 400, 400, 400]
    assert remote.signals == {} and remote.notables == {}


def test_refusal_fails_at_once_is_visible_and_retried(
    sqlite_url: str, remote: WritebackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(sqlite_url, remote, splunk_url=remote.url)
    case_id = decided_case(settings, [("splunk_notable", NOTABLE)], "true_positive", "escalate")
    remote.fail_with = [403]
    assert deliver(settings).counts()["failed"] == 1

    app = create_app(settings, dispatcher=NullDispatcher())
    token = make_token(sqlite_url, Role.analyst)
    with TestClient(app) as client:
        (row,) = client.get("/api/v1/outbox?status=open", headers=bearer(token)).json()
        assert (row["status"], row["case_id"], row["attempts"]) == ("failed", case_id, 1)
        assert "HTTP 403" in row["last_error"] and "wb-token" not in row["last_error"]
        login(client, token)
        page = client.get("/outbox")
        assert page.status_code == 200 and "HTTP 403" in page.text and f"#{case_id}" in page.text

    for key, value in {
        "SOCFLOW_DATABASE__URL": sqlite_url,
        "SOCFLOW_WRITEBACK__SPLUNK_URL": remote.url,
        "SOCFLOW_WRITEBACK__TOKEN": "wb-token",
        "SOCFLOW_WRITEBACK__BACKOFF_SECONDS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    listed = runner.invoke(cli, ["outbox", "list", "--status", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)[0]["status"] == "failed"
    assert "HTTP 403" in listed.output
    retried = runner.invoke(cli, ["outbox", "retry"])
    assert retried.exit_code == 0 and "1 deliveries pending again" in retried.output
    delivered = runner.invoke(cli, ["outbox", "deliver"])
    assert "delivered=1" in delivered.output, delivered.output
    assert remote.notables["EV-1@@notable@@abc"]["status"] == "2"  # escalated: in progress (acknowledged)
