"""Connector cursors in the ``connector_cursors`` table: where each pull connector stopped.

A cursor is a small JSON object owned by its connector (Elastic: the last hit's sort values; Splunk: the
last ``_time`` and the event ids seen at that time). It is written only after the alerts it covers were
ingested (committed), so a crash re-reads a page at worst, and ingest idempotency (``source_ref``) makes
that re-read store nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from socflow.schemas import now_utc
from socflow.tables import ConnectorCursor


class CursorStore(Protocol):
    def load(self, name: str) -> dict[str, Any] | None: ...

    def save(self, name: str, cursor: dict[str, Any]) -> None: ...


class DbCursorStore:
    """Cursors in the database (SQLite or PostgreSQL), one row per connector name."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def load(self, name: str) -> dict[str, Any] | None:
        with self.factory() as session:
            row = session.get(ConnectorCursor, name)
            return dict(row.cursor) if row is not None else None

    def save(self, name: str, cursor: dict[str, Any]) -> None:
        with self.factory() as session, session.begin():
            row = session.get(ConnectorCursor, name, with_for_update=True)
            if row is None:
                session.add(ConnectorCursor(name=name, cursor=dict(cursor), updated_at=now_utc()))
            else:
                row.cursor = dict(cursor)
                row.updated_at = now_utc()


class MemoryCursorStore:
    """Cursors in memory (tests, one-off runs that should not remember where they stopped)."""

    def __init__(self) -> None:
        self.cursors: dict[str, dict[str, Any]] = {}

    def load(self, name: str) -> dict[str, Any] | None:
        cursor = self.cursors.get(name)
        return dict(cursor) if cursor is not None else None

    def save(self, name: str, cursor: dict[str, Any]) -> None:
        self.cursors[name] = dict(cursor)
