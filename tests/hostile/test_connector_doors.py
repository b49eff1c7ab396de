"""The hostile-input corpus through the pull connectors' pages (Elastic/OpenSearch search answers and Splunk
exports) on SQLite and PostgreSQL: one hostile item never loses its page, every good item is stored, every
bad item is refused with a reason and kept as a dead letter that ``socflow deadletters list`` shows, and the
cursor moves past the refused items.

The pages are served byte for byte by the local test double (``tests/servers/paging_http.py``,
``raw_pages``): no real server stores NaN literals or 5,000-digit numbers (OpenSearch refuses to index
them), but a proxy, a plugin or a compromised source can answer anything. The connectors read the corpus
items as ``fmt="auto"`` documents, the way the API, the CLI and the folder door read them, so the expected
outcome of every item is the same as at every other door. What a real OpenSearch server does store (NUL
escapes, lone surrogates, invalid UTF-8, nesting that exhausts the parser, huge strings) is pulled from
``osmem-server`` in ``tests/production/test_opensearch_connector.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from socflow.connectors import ElasticAlertsConnector, MemoryCursorStore, SplunkNotablesConnector
from socflow.db import make_engine, session_factory
from socflow.tables import Alert, DeadLetter
from tests.hostile.corpus import Item, files, mixed_batches
from tests.ingest.conftest import Stored
from tests.ingest.conftest import stored as stored  # the fixture
from tests.servers.paging_http import PagingServer, paging_server

BASE_MS = 1_744_192_800_000


def elastic_page(items: list[Item], start: int) -> bytes:
    """A ``_search`` answer whose hits' ``_source`` are the items' raw bytes (sort: one ms apart)."""
    hits = []
    for n, item in enumerate(items, start=start):
        head = json.dumps({"_index": "alerts", "_id": item.marker, "sort": [BASE_MS + n, item.marker]})
        hits.append(head[:-1].encode() + b',"_source":' + item.raw + b"}")
    return b'{"took":1,"timed_out":false,"hits":{"hits":[' + b",".join(hits) + b"]}}"


def splunk_export(items: list[Item], start: int) -> bytes:
    """An export answer: one ``{"preview": false, "offset": n, "result": <raw item>}`` line per item, each
    result carrying Splunk's ``_time`` (one second apart; Splunk's ``_`` fields are not part of a
    document read in another format)."""
    lines = []
    for n, item in enumerate(items, start=start):
        raw = item.raw.replace(b"{", b'{"_time":"%d",' % (BASE_MS // 1000 + n), 1)
        lines.append(b'{"preview":false,"offset":%d,"result":' % n + raw + b"}")
    return b"\n".join(lines) + b"\n"


def outcome(url: str) -> tuple[set[str], list[tuple[str, str]]]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            refs = {r for r in s.scalars(select(Alert.source_ref)) if r}
            letters = s.scalars(select(DeadLetter).where(DeadLetter.door == "connector"))
            dead = [(d.payload, d.reason) for d in letters]
    finally:
        engine.dispose()
    return refs, dead


def check(url: str, items: list[Item]) -> int:
    refs, dead = outcome(url)
    good = {i.marker for i in items if i.good}
    bad = {i.marker for i in items if not i.good}
    assert good <= refs, f"good items lost: {sorted(good - refs)}"
    assert not (bad & refs), f"bad items stored: {sorted(bad & refs)}"
    assert all(reason.strip() for _, reason in dead)
    text = "\n".join(payload for payload, _ in dead)
    missing = sorted(m for m in bad if f'"source_ref":"{m}"' not in text)
    assert not missing, f"bad items without a dead letter: {missing}"
    return len(dead)


def pages(server: PagingServer, batches: list[list[Item]], render: object) -> None:
    start = 0
    for batch in batches:
        server.raw_pages.append(render(batch, start))  # type: ignore[operator]
        start += len(batch)


def _batches(*, syntax_errors: bool) -> list[list[Item]]:
    """Every corpus file and mixed batch as one page each. A syntactically broken item breaks the search
    answer around it (no server sends that), so Elastic pages leave the ``malformed`` items out; Splunk's
    export is one line per item and keeps them."""
    batches = [*files().values(), *mixed_batches()]
    if not syntax_errors:
        batches = [[i for i in b if i.category != "malformed"] for b in batches]
    return [b for b in batches if b]


def test_elastic_pages_of_the_corpus(db_url: str, stored: Stored) -> None:
    batches = _batches(syntax_errors=False)
    everything = [i for b in batches for i in b]
    cursors = MemoryCursorStore()
    with paging_server() as server:
        pages(server, batches, elastic_page)
        connector = ElasticAlertsConnector(
            server.url,
            stored.ingest("connector:elastic"),
            cursors=cursors,
            size=max(len(b) for b in batches) + 1,  # one page per poll
            fmt="auto",
            dead_letter=lambda refused: stored.service.refuse(refused, actor="connector:elastic"),
        )
        with connector:
            results = [connector.poll_once() for _ in batches]
            tail = connector.poll_once()
        after = [r.json().get("search_after") for r in server.requests]
    for batch, result in zip(batches, results, strict=True):
        assert result.fetched == len(batch), "every hit of the page is counted, none lost"
        assert result.accepted + result.duplicates == sum(i.good for i in batch)
        assert result.rejected == sum(not i.good for i in batch)
    # the cursor moved past every page, refused last hits included: each search starts after the last
    for n, batch in enumerate(batches[:-1]):
        assert after[n + 1] == [BASE_MS + sum(len(b) for b in batches[: n + 1]) - 1, batch[-1].marker]
    assert tail.fetched == 0
    check(db_url, everything)


def test_splunk_exports_of_the_corpus(db_url: str, stored: Stored, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    batches = _batches(syntax_errors=True)
    everything = [i for b in batches for i in b]
    with paging_server() as server:
        pages(server, batches, splunk_export)
        connector = SplunkNotablesConnector(
            server.url,
            stored.ingest("connector:splunk"),
            cursors=MemoryCursorStore(),
            size=max(len(b) for b in batches) + 1,
            fmt="auto",
            dead_letter=lambda refused: stored.service.refuse(refused, actor="connector:splunk"),
        )
        with connector:
            results = [connector.poll_once() for _ in batches]
    for batch, result in zip(batches, results, strict=True):
        assert result.fetched == len(batch)
        assert result.accepted + result.duplicates == sum(i.good for i in batch)
        assert result.rejected == sum(not i.good for i in batch)
    letters = check(db_url, everything)

    # what an operator sees: `socflow deadletters list --door connector`
    from socflow.cli import app

    monkeypatch.setenv("SOCFLOW_DATABASE__URL", db_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "siem.db"))
    shown = CliRunner().invoke(
        app, ["deadletters", "list", "--door", "connector", "--json", "--limit", "1000"]
    )
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.stdout)
    assert listed["total"] == letters > 0
    assert all(row["door"] == "connector" and row["reason"] for row in listed["rows"])
    assert "Traceback" not in shown.output


@pytest.mark.parametrize("kind", ["elastic", "splunk"])
def test_a_page_of_only_hostile_items_moves_the_cursor(kind: str, stored: Stored) -> None:
    """A page in which every item is refused is dead-lettered once; the next poll starts after it."""
    bad = [i for b in files().values() for i in b if not i.good and i.category in ("huge", "nan", "deep")]
    with paging_server() as server:
        cursors = MemoryCursorStore()
        refuse = lambda refused: stored.service.refuse(refused, actor=f"connector:{kind}")  # noqa: E731
        if kind == "elastic":
            server.raw_pages.append(elastic_page(bad, 0))
            conn: ElasticAlertsConnector | SplunkNotablesConnector = ElasticAlertsConnector(
                server.url, stored.ingest("c"), cursors=cursors, fmt="auto", dead_letter=refuse
            )
        else:
            rows = [splunk_export([item], n) for n, item in enumerate(bad)]
            server.raw_pages.append(b"".join(rows))
            conn = SplunkNotablesConnector(
                server.url, stored.ingest("c"), cursors=cursors, fmt="auto", dead_letter=refuse
            )
        with conn:
            first = conn.poll_once()
            second = conn.poll_once()
    assert (first.fetched, first.rejected, first.accepted) == (len(bad), len(bad), 0)
    assert first.cursor, "the cursor moved past the refused items"
    assert second.fetched == 0
    with stored.factory() as s:
        assert len(list(s.scalars(select(DeadLetter)))) == len(bad)  # each once
