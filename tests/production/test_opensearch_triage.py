"""The SOC's SIEM as evidence and decisions written back, against a real OpenSearch-API server.

Alerts are pulled from an alerts index by the connector (the production door), triaged by the in-process
runner with ``SOCFLOW_SIEM__BACKEND=opensearch`` (evidence from the events index), decided by an analyst,
and the decision is written back to the source alert documents through the outbox -- also when the
server is down at decision time: delivered once it is back, exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from socflow.cli_connector import ingest_callback
from socflow.connectors import ElasticAlertsConnector, MemoryCursorStore
from socflow.decisions import Decision, submit_decision
from socflow.dispatch import NullDispatcher
from socflow.doors import door_ingest
from socflow.outbox import deliver_outbox, list_outbox
from socflow.runner import Runner
from socflow.settings import Settings
from socflow.tables import Evidence, OutboxMessage
from tests.ingest.test_connectors import elastic_doc
from tests.servers.opensearch import ALERT_MAPPING, EVENT_MAPPING, OpenSearchServer
from tests.workflows.triage_helpers import make_runner, scripted

pytestmark = pytest.mark.opensearch

ALERTS = "alerts-triage-test"
EVENTS = "logs-triage-test"


def seed(server: OpenSearchServer, n: int) -> None:
    server.create_index(ALERTS, ALERT_MAPPING)
    server.create_index(EVENTS, EVENT_MAPPING)
    server.bulk_index(ALERTS, [(f"al-{n}", elastic_doc(n, "2025-04-09T10:05:00Z"))])
    events: list[tuple[str, dict[str, Any]]] = [
        (
            f"ev-{i}",
            {
                "@timestamp": f"2025-04-09T10:0{i}:30Z",
                "host.name": f"WS{n}",
                "user.name": "alice",
                "process.name": "powershell.exe",
                "process.command_line": f"powershell -enc AAAA{i}",
                "event.code": "4688",
            },
        )
        for i in range(3)
    ]
    events.append(  # outside the case window (more than an hour later): not evidence
        ("ev-late", {"@timestamp": "2025-04-09T13:00:00Z", "host.name": f"WS{n}", "event.code": "4688"})
    )
    events.append(  # another host: not evidence
        ("ev-other", {"@timestamp": "2025-04-09T10:01:00Z", "host.name": "SRV9", "event.code": "4688"})
    )
    server.bulk_index(EVENTS, events)


def settings_on(server: OpenSearchServer, db_url: str, tmp: Path) -> Settings:
    return Settings(
        database={"url": db_url},
        model={"backend": "scripted"},
        siem={"backend": "opensearch", "url": server.url, "index": EVENTS},
        writeback={
            "elastic_url": server.url,
            "backoff_seconds": 0,
            "case_url": "https://socflow.example/cases/{case_id}",
        },
    )


def pull_and_triage(server: OpenSearchServer, settings: Settings) -> tuple[Runner, int]:
    door = door_ingest(settings, dispatcher=NullDispatcher())
    with ElasticAlertsConnector(
        server.url,
        ingest_callback(door.service, actor="connector:elastic"),
        index=ALERTS,
        cursors=MemoryCursorStore(),
    ) as connector:
        polled = connector.poll_once()
    assert polled.accepted == 1
    runner = make_runner(settings, scripted())
    (run_id,) = runner.runnable()
    result = runner.advance(run_id)
    assert result.status.value == "awaiting_input", runner.get(run_id).error
    return runner, int(runner.get(run_id).case_id)


def test_evidence_comes_from_the_siem_index_and_the_decision_is_written_back(
    opensearch: OpenSearchServer, sqlite_url: str, tmp_path: Path
) -> None:
    seed(opensearch, 7)
    settings = settings_on(opensearch, sqlite_url, tmp_path)
    runner, case_id = pull_and_triage(opensearch, settings)
    with runner.factory() as s:
        siem = s.scalars(select(Evidence).where(Evidence.case_id == case_id, Evidence.backend.is_not(None)))
        events = sorted(e.source_event_id or "" for e in siem)
    assert events == [f"{EVENTS}/ev-{i}" for i in range(3)]

    submit_decision(runner, case_id, Decision(action="approve", user="ana"))  # true positive: acknowledged
    with runner.factory() as s:
        (row,) = list_outbox(s)
        assert (row.target, row.status, row.payload["status"]) == ("elastic", "pending", "acknowledged")
    assert opensearch.get(ALERTS, "al-7")["_source"].get("kibana.alert.workflow_status") is None

    report = deliver_outbox(settings, factory=runner.factory)
    assert report.counts() == {"delivered": 1, "retrying": 0, "failed": 0, "skipped": 0}
    source = opensearch.get(ALERTS, "al-7")["_source"]
    assert source["kibana.alert.workflow_status"] == "acknowledged"
    assert source["socflow.case_url"] == f"https://socflow.example/cases/{case_id}"
    assert "ana" in source["socflow.comment"] and f"case {case_id}" in source["socflow.comment"]
    assert deliver_outbox(settings, factory=runner.factory).counts()["delivered"] == 0  # nothing twice


def test_writeback_waits_for_a_stopped_server_and_lands_exactly_once(
    own_opensearch: OpenSearchServer, sqlite_url: str, tmp_path: Path
) -> None:
    server = own_opensearch
    seed(server, 8)
    settings = settings_on(server, sqlite_url, tmp_path)
    runner, case_id = pull_and_triage(server, settings)
    alert_doc = server.get(ALERTS, "al-8")

    server.stop()
    submit_decision(runner, case_id, Decision(action="escalate", user="ana", reason="lateral movement"))
    for _ in range(2):  # the target is down: the row stays pending with its reason, nothing is lost
        assert deliver_outbox(settings, factory=runner.factory).counts()["retrying"] == 1
    with runner.factory() as s:
        (row,) = s.scalars(select(OutboxMessage)).all()
        assert (row.status, row.attempts) == ("pending", 2)
        assert "RemoteUnavailable" not in (row.last_error or "") and "ConnectError" in (row.last_error or "")

    server.start()  # back (in-memory: the SOC's alert document is there again, as it was)
    server.create_index(ALERTS, ALERT_MAPPING)
    server.bulk_index(ALERTS, [("al-8", alert_doc["_source"])])
    version = server.get(ALERTS, "al-8")["_version"]
    assert deliver_outbox(settings, factory=runner.factory).counts()["delivered"] == 1
    assert deliver_outbox(settings, factory=runner.factory).counts()["delivered"] == 0
    after = server.get(ALERTS, "al-8")
    assert after["_source"]["kibana.alert.workflow_status"] == "acknowledged"
    assert "lateral movement" in after["_source"]["socflow.comment"]
    assert after["_version"] == version + 1  # exactly one update landed
    with runner.factory() as s:
        (row,) = s.scalars(select(OutboxMessage)).all()
        assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)
