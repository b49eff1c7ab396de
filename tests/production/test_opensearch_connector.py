"""The Elastic/OpenSearch alerts connector against a real OpenSearch-API server: pages with its cursor,
a restart resumes where it stopped, late-indexed alerts inside the lookback are picked up exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from socflow.cli_connector import ingest_callback
from socflow.connectors import DbCursorStore, ElasticAlertsConnector
from socflow.dispatch import NullDispatcher
from socflow.doors import door_ingest
from socflow.tables import Alert, Case, WorkflowRun
from tests.ingest.test_connectors import elastic_doc
from tests.servers.opensearch import ALERT_MAPPING, OpenSearchServer
from tests.workflows.triage_helpers import settings_for

pytestmark = pytest.mark.opensearch

INDEX = "alerts-connector-test"


def doc(n: int, minute: int) -> tuple[str, dict[str, Any]]:
    d = elastic_doc(n, f"2025-04-09T10:{minute:02d}:00Z")
    return f"id-{n:03d}", d


def test_connector_pages_resumes_and_picks_late_alerts_once(
    opensearch: OpenSearchServer, sqlite_url: str, tmp_path: Path
) -> None:
    opensearch.create_index(INDEX, ALERT_MAPPING)
    opensearch.bulk_index(INDEX, [doc(n, n) for n in range(1, 8)])  # 7 alerts, one a minute
    settings = settings_for(sqlite_url, tmp_path)
    door = door_ingest(settings, dispatcher=NullDispatcher())
    factory = door.service.factory
    cursors = DbCursorStore(factory)

    def connector() -> ElasticAlertsConnector:  # a fresh process: only the database remembers
        return ElasticAlertsConnector(
            opensearch.url,
            ingest_callback(door.service, actor="connector:elastic"),
            index=INDEX,
            cursors=cursors,
            size=3,
            max_pages=1,
            lookback=600,
        )

    with connector() as first:
        r1 = first.poll_once()
    assert (r1.fetched, r1.accepted, r1.more) == (3, 3, True)
    with connector() as second:  # restart: resumes after the third alert
        r2 = second.poll_once()
        r3 = second.poll_once()
        r4 = second.poll_once()
    assert (r2.accepted, r3.accepted, r4.accepted) == (3, 1, 0)
    assert r4.fetched == 0

    # two late alerts: indexed now, stamped before the cursor (10:07) -- one inside the lookback (10 min),
    # one outside it
    opensearch.bulk_index(INDEX, [doc(50, 3), ("id-old", elastic_doc(51, "2025-04-09T09:50:00Z"))])
    with connector() as third:
        late = third.poll_once()
        again = third.poll_once()
    assert (late.fetched, late.accepted, late.duplicates) == (1, 1, 0)
    assert (again.fetched, again.accepted) == (0, 0)

    with factory() as s:
        refs = set(s.scalars(select(Alert.source_ref)))
        assert refs == {f"uuid-{n:03d}" for n in [*range(1, 8), 50]}
        # every pulled alert is grouped and triage-queued (default grouping: rule + hosts + users)
        assert s.scalar(select(func.count(Case.id))) == 8
        assert s.scalar(select(func.count(WorkflowRun.id))) == 8


HOSTILE_INDEX = "alerts-hostile-test"


def raw_doc(n: int, extra: bytes) -> bytes:
    head = {
        "@timestamp": f"2025-04-09T11:{n:02d}:00Z",
        "kibana.alert.uuid": f"hostile-{n:03d}",
        "kibana.alert.rule.rule_id": f"rule-{n}",
        "host": {"name": f"WS{n}"},
    }
    return json.dumps(head)[:-1].encode() + extra + b"}"


def test_hostile_documents_in_opensearch_lose_nothing(
    opensearch: OpenSearchServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a real OpenSearch server stores and hands back (NUL escapes, lone surrogates, invalid UTF-8
    bytes, nesting deep enough to exhaust Python's parser, a 400 KB string): every good alert is stored,
    every bad one is refused and listed by ``socflow deadletters list``, and the cursor passes them all."""
    name = b',"kibana.alert.rule.name":'
    docs = {
        1: (name + b'"plain"', True),
        2: (name + b'"a\\u0000b"', True),  # NUL removed
        3: (name + b'"lone \\ud800 surrogate"', True),  # U+FFFD
        4: (name + b'"caf\xff bytes"', True),  # invalid UTF-8 -> U+FFFD (the page used to fail whole)
        5: (name + b'"deep","x":' + b"[" * 40 + b"1" + b"]" * 40, False),  # past 32 levels
        6: (name + b'"deeper","x":' + b"[" * 3000 + b"1" + b"]" * 3000, False),  # exhausts the parser
        7: (name + b'"big","kibana.alert.reason":"' + b"r" * 400_000 + b'"', False),  # oversize
        8: (name + b'""', False),  # no title: the schema refuses it
        9: (name + b'"last"', True),
    }
    opensearch.create_index(HOSTILE_INDEX, ALERT_MAPPING)
    for n, (body, _) in docs.items():
        opensearch.request(
            "PUT",
            f"/{HOSTILE_INDEX}/_doc/h{n}?refresh=true",
            content=raw_doc(n, body),
            headers={"Content-Type": "application/json"},
        )
    settings = settings_for(sqlite_url, tmp_path)
    door = door_ingest(settings, dispatcher=NullDispatcher())
    cursors = DbCursorStore(door.service.factory)
    with ElasticAlertsConnector(
        opensearch.url,
        ingest_callback(door.service, actor="connector:elastic"),
        index=HOSTILE_INDEX,
        cursors=cursors,
        size=4,
        dead_letter=lambda refused: door.service.refuse(refused, actor="connector:elastic"),
    ) as conn:
        first = conn.poll_once()
        again = conn.poll_once()
    good = {f"hostile-{n:03d}" for n, (_, ok) in docs.items() if ok}
    assert (first.fetched, first.accepted, first.rejected) == (9, len(good), 9 - len(good))
    assert again.fetched == 0, "the cursor is past every hit, refused ones included"
    assert first.cursor is not None and first.cursor["search_after"][1] == "hostile-009"
    with door.service.factory() as s:
        assert set(s.scalars(select(Alert.source_ref))) == good
        titles = {a.source_ref: a.title for a in s.scalars(select(Alert))}
    assert titles["hostile-002"] == "ab" and "\ufffd" in titles["hostile-003"] + titles["hostile-004"]

    from socflow.cli import app

    monkeypatch.setenv("SOCFLOW_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "siem.db"))
    shown = CliRunner().invoke(app, ["deadletters", "list", "--door", "connector", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)["rows"]
    assert len(rows) == 4
    for n in (5, 6, 7, 8):
        assert any(f"hostile-{n:03d}" in row["payload"] + row["reason"] for row in rows), n
    assert all(row["source"] == "elastic-security" and row["reason"] for row in rows)
