"""Pull connectors against a real local HTTP server: paging, cursors in the database, idempotent re-polls,
authentication and errors that never show credentials."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from socflow.connectors import (
    ConnectorError,
    ConnectorHTTPError,
    DbCursorStore,
    ElasticAlertsConnector,
    MemoryCursorStore,
    PollResult,
    SplunkNotablesConnector,
)
from socflow.db import make_engine, session_factory
from socflow.http import RetryPolicy
from socflow.tables import ConnectorCursor
from tests.ingest.conftest import Stored
from tests.servers.paging_http import EXPORT_PATH, PagingServer, paging_server

ELASTIC_TIMES = [
    "2025-04-09T10:00:00Z",
    "2025-04-09T10:01:00Z",
    "2025-04-09T10:01:00Z",  # same instant as the one before, across the page boundary (size 2)
    "2025-04-09T10:02:00Z",
    "2025-04-09T10:03:00Z",
]


def elastic_doc(n: int, timestamp: str) -> dict[str, Any]:
    return {
        "@timestamp": timestamp,
        "kibana.alert.uuid": f"uuid-{n:03d}",
        "kibana.alert.rule.name": f"Rule {n}",
        "kibana.alert.rule.rule_id": f"rule-{n}",
        "kibana.alert.severity": "high",
        "host": {"name": f"WS{n}"},
        "user": {"name": "alice"},
    }


def splunk_row(n: int, time: str) -> dict[str, Any]:
    return {
        "_time": time,
        "event_id": f"EV-{n:03d}@@notable@@{n:04d}",
        "search_name": f"Endpoint - Rule {n} - Rule",
        "rule_name": f"Rule {n}",
        "urgency": "medium",
        "dest": f"WS{n}",
        "user": "bob",
    }


@pytest.fixture
def server() -> Iterator[PagingServer]:
    with paging_server() as srv:
        yield srv


def cursor_row(db_url: str, name: str) -> dict[str, Any] | None:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            row = session.scalars(select(ConnectorCursor).where(ConnectorCursor.name == name)).one_or_none()
            return dict(row.cursor) if row else None
    finally:
        engine.dispose()


# -- Elastic -----------------------------------------------------------------------------------------
def test_elastic_pages_cursor_and_idempotent_repoll(
    server: PagingServer, stored: Stored, db_url: str
) -> None:
    server.elastic_docs = [elastic_doc(n, t) for n, t in enumerate(ELASTIC_TIMES, start=1)]
    server.required_auth = "ApiKey c2VjcmV0LWtleQ=="
    ingest = stored.ingest("connector:elastic")

    first = ElasticAlertsConnector(
        server.url,
        ingest,
        cursors=DbCursorStore(stored.factory),
        size=2,
        max_pages=1,
        api_key="c2VjcmV0LWtleQ==",
    )
    one = first.poll_once()
    assert (one.fetched, one.accepted, one.duplicates, one.rejected, one.more) == (2, 2, 0, 0, True)
    two = first.poll_once()
    assert (two.fetched, two.accepted, two.more) == (2, 2, True)
    first.close()
    saved = cursor_row(db_url, "elastic")
    assert saved is not None and saved["search_after"][1] == "uuid-004"
    assert saved == two.cursor

    # a NEW instance (new engine too) resumes from the cursor in the database
    engine = make_engine(db_url)
    with ElasticAlertsConnector(
        server.url,
        ingest,
        cursors=DbCursorStore(session_factory(engine)),
        size=2,
        max_pages=1,
        api_key="c2VjcmV0LWtleQ==",
    ) as second:
        three = second.poll_once()
        assert (three.fetched, three.accepted, three.more) == (1, 1, False)
        resumed = server.requests[-1].json()
        assert resumed["search_after"] == saved["search_after"]
        assert resumed["query"]["bool"]["filter"] == [
            {"range": {"@timestamp": {"gte": "2025-04-09T10:02:00Z"}}}
        ]
        empty = second.poll_once()
        assert (empty.fetched, empty.accepted) == (0, 0)
    engine.dispose()

    assert stored.refs() == [("elastic-security", f"uuid-{n:03d}") for n in range(1, 6)]
    for request in server.requests:
        assert request.method == "POST"
        assert request.path == "/.alerts-security.alerts-default/_search"
        assert request.headers["Authorization"] == "ApiKey c2VjcmV0LWtleQ=="
    body = server.requests[0].json()
    assert body["size"] == 2
    assert body["sort"] == [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": {"order": "asc"}}]
    assert "search_after" not in body and body["query"]["bool"]["filter"] == []

    # re-poll from scratch: everything is fetched again, nothing new is stored
    again = ElasticAlertsConnector(server.url, ingest, size=2, max_pages=10, api_key="c2VjcmV0LWtleQ==")
    redo = again.poll_once()
    assert (redo.fetched, redo.accepted, redo.duplicates, redo.more) == (5, 0, 5, False)
    assert len(stored.refs()) == 5

    # a new alert after the cursor is picked up on the next poll
    server.elastic_docs.append(elastic_doc(6, "2025-04-09T10:04:00Z"))
    with ElasticAlertsConnector(
        server.url, ingest, cursors=DbCursorStore(stored.factory), size=2, api_key="c2VjcmV0LWtleQ=="
    ) as third:
        assert third.poll_once().accepted == 1
    assert stored.refs()[-1] == ("elastic-security", "uuid-006")


def test_elastic_since_index_and_basic_auth(server: PagingServer, stored: Stored) -> None:
    server.elastic_docs = [elastic_doc(n, t) for n, t in enumerate(ELASTIC_TIMES, start=1)]
    with ElasticAlertsConnector(
        server.url + "/",
        stored.ingest("connector:elastic"),
        index="alerts-*",
        since="2025-04-09T10:02:00Z",
        username="elastic",
        password="pw",
    ) as conn:
        result = conn.poll_once()
    assert (result.fetched, result.accepted) == (2, 2)
    request = server.requests[0]
    assert request.path == "/alerts-*/_search"
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.json()["query"]["bool"]["filter"] == [
        {"range": {"@timestamp": {"gte": "2025-04-09T10:02:00Z"}}}
    ]


def test_elastic_bad_hit_is_rejected_and_the_rest_stored(server: PagingServer, stored: Stored) -> None:
    bad = elastic_doc(2, "2025-04-09T10:01:00Z")
    bad["kibana.alert.rule.name"] = ""  # no title: the schema refuses it
    server.elastic_docs = [
        elastic_doc(1, "2025-04-09T10:00:00Z"),
        bad,
        elastic_doc(3, "2025-04-09T10:02:00Z"),
    ]
    with ElasticAlertsConnector(server.url, stored.ingest("connector:elastic")) as conn:
        result = conn.poll_once()
    assert (result.fetched, result.accepted, result.rejected) == (3, 2, 1)
    assert result.problems and result.problems[0].startswith("hit uuid-002: title")
    assert result.cursor is not None and result.cursor["search_after"][1] == "uuid-003"


# -- Splunk ------------------------------------------------------------------------------------------
SPLUNK_TIMES = ["1744192800.000", "1744192860.000", "1744192860.000", "1744192920.500", "1744192980.000"]


def test_splunk_pages_cursor_and_idempotent_repoll(server: PagingServer, stored: Stored, db_url: str) -> None:
    server.splunk_rows = [splunk_row(n, t) for n, t in enumerate(SPLUNK_TIMES, start=1)]
    server.required_auth = "Bearer spl-token-123"
    ingest = stored.ingest("connector:splunk")

    with SplunkNotablesConnector(
        server.url,
        ingest,
        cursors=DbCursorStore(stored.factory),
        size=2,
        max_pages=1,
        bearer_token="spl-token-123",
    ) as first:
        results = [first.poll_once(), first.poll_once()]
    assert [(r.fetched, r.accepted, r.more) for r in results] == [(2, 2, True), (2, 2, True)]
    saved = cursor_row(db_url, "splunk")
    assert saved == {"time": 1744192920.5, "ids": ["EV-004@@notable@@0004"]}

    engine = make_engine(db_url)
    with SplunkNotablesConnector(
        server.url,
        ingest,
        cursors=DbCursorStore(session_factory(engine)),
        size=2,
        max_pages=1,
        bearer_token="spl-token-123",
    ) as second:
        last = second.poll_once()
        assert (last.fetched, last.accepted, last.more) == (1, 1, False)
        form = server.requests[-1].form()
        assert form["search"] == (
            "search `notable` | where _time > 1744192920.5 OR (_time = 1744192920.5 AND NOT in(event_id, "
            '"EV-004@@notable@@0004")) | sort 0 _time event_id | head 2'
        )
        assert form["earliest_time"] == "1744192920.5"
        assert second.poll_once().fetched == 0
    engine.dispose()

    assert stored.refs() == [("splunk-es", f"EV-{n:03d}@@notable@@{n:04d}") for n in range(1, 6)]
    first_form = server.requests[0].form()
    assert first_form == {
        "search": "search `notable` | sort 0 _time event_id | head 2",
        "output_mode": "json",
        "earliest_time": "0",
        "latest_time": "now",
    }
    for request in server.requests:
        assert (request.method, request.path) == ("POST", EXPORT_PATH)
        assert request.headers["Authorization"] == "Bearer spl-token-123"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"

    with SplunkNotablesConnector(server.url, ingest, bearer_token="spl-token-123", size=100) as again:
        redo = again.poll_once()
    assert (redo.fetched, redo.accepted, redo.duplicates) == (5, 0, 5)
    assert len(stored.refs()) == 5


def test_splunk_ties_across_pages_are_not_lost(server: PagingServer, stored: Stored) -> None:
    same = "1744192860.000"
    server.splunk_rows = [splunk_row(n, same) for n in range(1, 6)]
    conn = SplunkNotablesConnector(server.url, stored.ingest("connector:splunk"), size=2, max_pages=10)
    result = conn.poll_once()
    conn.close()
    assert (result.fetched, result.accepted, result.duplicates) == (5, 5, 0)
    assert result.cursor is not None and len(result.cursor["ids"]) == 5


# -- errors and the run loop -------------------------------------------------------------------------
def test_http_error_has_status_and_no_credentials(server: PagingServer) -> None:
    server.fail_with = [401]
    conn = SplunkNotablesConnector(
        server.url, lambda alerts: PollResult(), username="admin", password="hunter2"
    )
    with pytest.raises(ConnectorHTTPError) as info:
        conn.poll_once()
    conn.close()
    message = str(info.value)
    assert info.value.status_code == 401
    assert "HTTP 401" in message and EXPORT_PATH in message
    assert "hunter2" not in message and "YWRtaW46aHVudGVyMg==" not in message  # base64 of admin:hunter2
    assert "***" in message  # the echoed Authorization header was redacted

    server.fail_with = [500, 503]  # a 5xx is retried (once by default), then reported
    conn2 = ElasticAlertsConnector(
        server.url, lambda alerts: PollResult(), api_key="topsecret", retry=RetryPolicy(2, 0.0)
    )
    with pytest.raises(ConnectorHTTPError) as info2:
        conn2.poll_once()
    conn2.close()
    assert info2.value.status_code == 503 and "topsecret" not in str(info2.value)

    server.fail_with = [429]  # one transient answer: the retry gets the page
    conn3 = ElasticAlertsConnector(server.url, lambda alerts: PollResult(), retry=RetryPolicy(2, 0.0))
    assert conn3.poll_once().fetched == 0
    conn3.close()
    assert server.fail_with == []


def test_unreachable_server_is_a_connector_error_without_userinfo() -> None:
    with paging_server() as srv:
        url = srv.url
    conn = ElasticAlertsConnector(
        url.replace("http://", "http://user:pw@"), lambda a: PollResult(), timeout=2
    )
    with pytest.raises(ConnectorError) as info:
        conn.poll_once()
    conn.close()
    assert "pw" not in str(info.value).replace("POST", "")
    assert not isinstance(info.value, ConnectorHTTPError)


def test_cursor_not_saved_when_ingest_fails(server: PagingServer) -> None:
    server.elastic_docs = [elastic_doc(1, "2025-04-09T10:00:00Z")]
    cursors = MemoryCursorStore()

    def broken(alerts: list[dict[str, Any]]) -> PollResult:
        raise RuntimeError("database down")

    with ElasticAlertsConnector(server.url, broken, cursors=cursors) as conn, pytest.raises(RuntimeError):
        conn.poll_once()
    assert cursors.load("elastic") is None


def test_run_loop_polls_until_stopped(server: PagingServer, stored: Stored) -> None:
    server.elastic_docs = [elastic_doc(n, t) for n, t in enumerate(ELASTIC_TIMES, start=1)]
    server.fail_with = [503, 503]  # both tries of the first poll fail: the loop backs off and polls again
    stop = threading.Event()
    polls: list[PollResult] = []
    errors: list[ConnectorError] = []

    def on_poll(result: PollResult) -> None:
        polls.append(result)
        if sum(p.accepted for p in polls) == 5:
            stop.set()

    with ElasticAlertsConnector(server.url, stored.ingest("connector:elastic"), size=2, max_pages=1) as conn:
        worker = threading.Thread(
            target=conn.run, args=(0.01, stop), kwargs={"on_poll": on_poll, "on_error": errors.append}
        )
        worker.start()
        worker.join(timeout=30)
        stop.set()
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectorHTTPError)
    assert [p.accepted for p in polls] == [2, 2, 1]


def test_splunk_lookback_picks_late_notables_once(server: PagingServer, stored: Stored, db_url: str) -> None:
    """Same lookback semantics as Elastic: a notable indexed late, stamped inside ``lookback`` seconds
    before the cursor, is ingested exactly once; one stamped before the window is not re-read."""
    server.splunk_rows = [splunk_row(n, t) for n, t in enumerate(SPLUNK_TIMES, start=1)]
    ingest = stored.ingest("connector:splunk")

    def connector() -> SplunkNotablesConnector:  # a fresh process each time: only the database remembers
        return SplunkNotablesConnector(
            server.url, ingest, cursors=DbCursorStore(stored.factory), size=2, lookback=120
        )

    with connector() as first:
        caught_up = first.poll_once()
    assert (caught_up.fetched, caught_up.accepted, caught_up.duplicates) == (5, 5, 0)
    saved = cursor_row(db_url, "splunk")
    assert saved is not None and saved["time"] == 1744192980.0
    assert set(saved["seen"]) == {
        r["event_id"] for r in server.splunk_rows if float(r["_time"]) >= 1744192860
    }
    lookback = server.requests[-1].form()
    assert lookback["search"] == (
        "search `notable` | where _time >= 1744192860 AND _time <= 1744192980 | sort 0 _time event_id"
        " | head 200"
    )
    assert lookback["earliest_time"] == "1744192860"

    # late: stamped 10:01:30 (inside the 120 s window before the 10:03 cursor) and 09:50 (outside it)
    server.splunk_rows += [splunk_row(50, "1744192890.000"), splunk_row(51, "1744192200.000")]
    with connector() as second:
        late = second.poll_once()
        again = second.poll_once()
    assert (late.fetched, late.accepted, late.duplicates) == (1, 1, 0)
    assert (again.fetched, again.accepted, again.duplicates) == (0, 0, 0)
    refs = [ref for _, ref in stored.refs()]
    assert refs.count("EV-050@@notable@@0050") == 1 and "EV-051@@notable@@0051" not in refs

    # a newer notable moves the cursor; the window (and the seen ids) move with it
    server.splunk_rows.append(splunk_row(6, "1744193400.000"))
    with connector() as third:
        assert third.poll_once().accepted == 1
    saved = cursor_row(db_url, "splunk")
    assert saved is not None and set(saved["seen"]) == {"EV-006@@notable@@0006"}


def test_splunk_without_lookback_reads_no_window(server: PagingServer, stored: Stored) -> None:
    server.splunk_rows = [splunk_row(n, t) for n, t in enumerate(SPLUNK_TIMES, start=1)]
    with SplunkNotablesConnector(server.url, stored.ingest("connector:splunk"), size=10) as conn:
        result = conn.poll_once()
    assert result.accepted == 5 and result.cursor is not None and "seen" not in result.cursor
    assert all("_time >=" not in r.form()["search"] for r in server.requests)


def test_an_unreadable_answer_is_a_connector_error_and_keeps_the_cursor(server: PagingServer) -> None:
    """Only an answer with nothing readable at all fails the poll (retried with backoff); the cursor stays."""
    cursors = MemoryCursorStore()
    cursors.save("elastic", {"timestamp": "2025-04-09T10:00:00Z", "search_after": [1, "a"]})
    cursors.save("splunk", {"time": 1744192800.0, "ids": []})
    server.raw_pages += [b"<html>proxy error</html>", b'{"hits": {"hits": "nope"}}']
    with ElasticAlertsConnector(server.url, lambda a: PollResult(), cursors=cursors) as conn:
        for _ in range(2):
            with pytest.raises(ConnectorError, match="hits"):
                conn.poll_once()
    # an export whose rows have no readable _time cannot be placed: an error, not a silent re-read
    server.raw_pages.append(b'{"preview":false,"result":{"event_id":"x","_time":"never"}}\n')
    splunk = SplunkNotablesConnector(server.url, lambda a: PollResult(), cursors=cursors)
    with splunk, pytest.raises(ConnectorError, match="_time"):
        splunk.poll_once()
    assert cursors.load("elastic") == {"timestamp": "2025-04-09T10:00:00Z", "search_after": [1, "a"]}
    assert cursors.load("splunk") == {"time": 1744192800.0, "ids": []}
