"""LangGraph checkpointers in socflow's own database: the SQLite saver for SQLite URLs, the Postgres saver
for PostgreSQL. Checkpoint deserialization is strict (only LangGraph's safe msgpack types: graph state
holds JSON-plain values and ids), whatever ``LANGGRAPH_STRICT_MSGPACK`` says (CVE-2026-28277)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy.engine import make_url

from socflow.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite

SETUP_LOCK_KEY = "socflow-checkpoint-setup"
_ready: set[str] = set()
_ready_lock = threading.Lock()


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
            conn.execute("PRAGMA synchronous = NORMAL")  # as socflow's own connections (socflow.db)
            saver = SqliteSaver(conn, serde=strict_serde())
            saver.setup()  # CREATE TABLE IF NOT EXISTS under SQLite's own lock: cheap and safe
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
        pg_saver = PostgresSaver(pg_conn, serde=strict_serde())
        if url not in _ready:
            with _ready_lock:
                if url not in _ready:
                    _setup_postgres(pg_conn, pg_saver)
                    _ready.add(url)
        yield pg_saver


def _setup_postgres(conn: Any, saver: Any, *, timeout: float = 300.0) -> None:
    """Create the Postgres saver's tables once per process, one process at a time.

    ``PostgresSaver.setup()`` is not safe to run concurrently on a database without its tables (two
    creators collide on ``CREATE TABLE``), so it runs under an advisory lock. The connection is in
    autocommit mode and the lock is polled, never awaited inside a transaction: the setup's
    ``CREATE INDEX CONCURRENTLY`` waits for every open transaction of the database.
    """
    deadline = time.monotonic() + timeout
    while not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (SETUP_LOCK_KEY,)).fetchone()[
        "ok"
    ]:
        if time.monotonic() > deadline:
            raise TimeoutError("another process held the checkpoint set-up lock for too long")
        time.sleep(0.2)
    try:
        saver.setup()
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SETUP_LOCK_KEY,))


def prepare_checkpoints(url: str) -> None:
    """Create the checkpointer's tables now (worker start-up), instead of on the first run."""
    with open_checkpointer(url):
        return


_SQLITE_KEEP_LATEST = (
    """DELETE FROM writes WHERE thread_id = ? AND checkpoint_id < (
         SELECT max(c.checkpoint_id) FROM checkpoints c
         WHERE c.thread_id = writes.thread_id AND c.checkpoint_ns = writes.checkpoint_ns)""",
    """DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id < (
         SELECT max(c.checkpoint_id) FROM checkpoints c
         WHERE c.thread_id = checkpoints.thread_id AND c.checkpoint_ns = checkpoints.checkpoint_ns)""",
)


def keep_latest(saver: BaseCheckpointSaver[str], thread_ids: list[str]) -> None:
    """Drop every checkpoint of these threads (runs) but the latest, with the older ones' pending writes;
    the latest checkpoint, its writes and (PostgreSQL) the blobs it references stay."""
    if not thread_ids:
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    if not isinstance(saver, SqliteSaver):  # PostgresSaver
        saver.prune(thread_ids, strategy="keep_latest")
        return
    with saver.cursor() as cur:  # one transaction (the saver commits on exit)
        for thread_id in thread_ids:
            for sql in _SQLITE_KEEP_LATEST:
                cur.execute(sql, (thread_id,))
