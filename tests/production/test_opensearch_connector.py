"""The Elastic/OpenSearch alerts connector against a real OpenSearch-API server: pages with its cursor,
a restart resumes where it stopped, late-indexed alerts inside the lookback are picked up exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

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
