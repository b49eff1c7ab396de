"""LangGraph checkpointers in socflow's own database: the SQLite saver for SQLite URLs, the Postgres saver
for PostgreSQL. Checkpoint deserialization is strict (only LangGraph's safe msgpack types: graph state
holds JSON-plain values and ids), whatever ``LANGGRAPH_STRICT_MSGPACK`` says (CVE-2026-28277)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy.engine import make_url

from socflow.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite


def strict_serde() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def _libpq_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def open_checkpointer(url: str) -> Iterator[BaseCheckpointSaver[str]]:
    """A set-up checkpointer on the database at ``url`` (closed on exit)."""
    if is_sqlite(url):
        from langgraph.checkpoint.sqlite import SqliteSaver

        database = make_url(url).database or ":memory:"
        if database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(database, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            saver = SqliteSaver(conn, serde=strict_serde())
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import Connection
    from psycopg.rows import dict_row

    with Connection.connect(
        _libpq_url(url), autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as pg_conn:
        pg_saver = PostgresSaver(pg_conn, serde=strict_serde())  # type: ignore[arg-type]
        pg_saver.setup()
        yield pg_saver
