"""The hostile-input corpus against every door (API, ``socflow ingest``, the folder watcher) on SQLite and
PostgreSQL: no 5xx, no traceback, every good item stored, every bad item refused with a reason and kept
as a dead letter. The CLI and folder doors read each corpus file once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from socflow.api import create_app
from socflow.auth import Role
from socflow.connectors.folder import FolderWatcher
from socflow.db import make_engine, session_factory
from socflow.dispatch import NullDispatcher
from socflow.ingest import IngestService
from socflow.settings import Settings
from socflow.tables import Alert, DeadLetter
from tests.api.conftest import bearer, make_token
from tests.hostile.corpus import Item, array, corpus, files, mixed_batches, ndjson
from tests.ingest.conftest import Stored

CORPUS = corpus()
GOOD = {i.marker for i in CORPUS if i.good}
BAD = {i.marker for i in CORPUS if not i.good}


def test_the_corpus_is_big_enough() -> None:
    categories: dict[str, int] = {}
    for item in CORPUS:
        categories[item.category] = categories.get(item.category, 0) + 1
    assert len(CORPUS) + len(mixed_batches()) >= 150
    assert min(categories.values()) >= 10 and len(mixed_batches()) >= 10
    assert GOOD and BAD


def _stored_and_dead(url: str) -> tuple[set[str], str]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            refs = {r for r in s.scalars(select(Alert.source_ref)) if r}
            dead = "\n".join(f"{d.reason}\x1f{d.payload}" for d in s.scalars(select(DeadLetter)))
            reasons = [d.reason for d in s.scalars(select(DeadLetter))]
    finally:
        engine.dispose()
    assert all(r.strip() for r in reasons)
    return refs, dead


def _check_outcome(url: str) -> None:
    refs, dead = _stored_and_dead(url)
    assert refs >= GOOD, f"good items lost: {sorted(GOOD - refs)}"
    assert not (BAD & refs), f"bad items stored: {sorted(BAD & refs)}"
    missing = sorted(m for m in BAD if f'"source_ref":"{m}"' not in dead)
    assert not missing, f"bad items without a dead letter: {missing}"


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    settings = Settings(
        database={"url": db_url}, siem={"path": tmp_path / "siem.db"}, model={"backend": "scripted"}
    )
    app = create_app(settings, dispatcher=NullDispatcher())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, make_token(db_url, Role.ingest), make_token(db_url, Role.analyst)


def _post(client: TestClient, token: str, body: bytes, ctype: str, items: list[Item]) -> None:
    r = client.post("/api/v1/alerts", content=body, headers={**bearer(token), "Content-Type": ctype})
    assert r.status_code in (200, 207, 422), (r.status_code, r.text[:500])
    got = r.json()["items"]
    assert len(got) == len(items)
    for item, result in zip(items, got, strict=True):
        if item.good:
            assert result["status"] in ("accepted", "duplicate"), (item.marker, result)
        else:
            assert result["status"] == "rejected" and result["reason"], (item.marker, result)


def test_api_door(api: tuple[TestClient, str, str], db_url: str) -> None:
    client, ingest, analyst = api
    for batch in mixed_batches():
        _post(client, ingest, ndjson(batch), "application/x-ndjson", batch)
    for name, items in files().items():
        _post(client, ingest, ndjson(items), "application/x-ndjson", items)
        if name != "malformed":  # a syntactically broken element breaks the array around it
            _post(client, ingest, array(items), "application/json", items)
    _check_outcome(db_url)
    # every stored alert reads back (nesting bounded at ingest: no 500 on read)
    page = client.get("/api/v1/alerts?limit=1000", headers=bearer(analyst)).json()
    assert page["total"] >= len(GOOD)
    for alert in page["items"]:
        assert client.get(f"/api/v1/alerts/{alert['id']}", headers=bearer(analyst)).status_code == 200
    letters = client.get("/api/v1/dead-letters?limit=1000&door=api", headers=bearer(analyst))
    assert letters.status_code == 200 and letters.json()["total"] >= len(BAD)


def test_cli_door_reads_each_corpus_file_once(db_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from socflow.cli import app

    monkeypatch.setenv("SOCFLOW_DATABASE__URL", db_url)
    monkeypatch.setenv("SOCFLOW_MODEL__BACKEND", "scripted")
    monkeypatch.setenv("SOCFLOW_SIEM__PATH", str(tmp_path / "siem.db"))
    runner = CliRunner()
    for name, items in files().items():
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(ndjson(items))
        result = runner.invoke(app, ["ingest", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code == (1 if any(not i.good for i in items) else 0), result.output
        assert "Traceback" not in result.output
    _check_outcome(db_url)


def test_folder_door_stores_good_items_and_moves_on(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    stored = Stored(session_factory(engine), IngestService(session_factory(engine)))
    watcher = FolderWatcher(
        tmp_path / "drop",
        stored.ingest("connector:folder"),
        settle_seconds=0,
        dead_letter=lambda refused: stored.service.refuse(refused, actor="connector:folder"),
    )
    for name, items in files().items():
        (tmp_path / "drop" / f"{name}.ndjson").write_bytes(ndjson(items))
    result = watcher.poll_once()
    engine.dispose()
    assert not watcher.pending(), "every file is moved on, none retried forever"
    assert result.accepted == len(GOOD)
    _check_outcome(db_url)
